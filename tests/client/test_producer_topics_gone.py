"""The producer's record of deleted topics' names (`TopicCache._gone`) stays bounded."""

from __future__ import annotations

from lnc_client.config import ConnectionOptions, ReconnectConfig
from lnc_client.producer import topics
from lnc_client.producer.topics import TopicCache
from lnc_client.reconnect import ConnectionManager


def test_forgotten_topics_are_kept_for_their_successor_but_bounded() -> None:
    manager = ConnectionManager(["127.0.0.1:1"], ConnectionOptions(), ReconnectConfig())
    cache = TopicCache(manager)
    for topic_id in range(topics._GONE_KEPT + 10):
        cache._ids[f"t{topic_id}"] = topic_id
        cache.forget_id(topic_id)
    assert len(cache._gone) == topics._GONE_KEPT
    assert 0 not in cache._gone  # the oldest loss went first
    assert cache._gone[topics._GONE_KEPT + 9] == f"t{topics._GONE_KEPT + 9}"
