"""The producer's topic names: resolved to ids once (ListTopics, optionally CreateTopic), cached.

A send names its topic by id or by name. A name is resolved on its first use and cached. When
the server answers a batch with "Unknown topic" (the topic was deleted), the window drops the
cached names of that id (`forget_id`) and asks for the `successor`: the id that the topic's name
has now, when the topic was created again under it. The batch then goes to that topic instead
of failing, so the first send after a re-creation loses nothing (issue 9.10). A batch whose
topic id was never resolved from a name has no successor and fails.
"""

from __future__ import annotations

from typing import Final

from lnc_client import operations
from lnc_client.errors import TopicAlreadyExistsError, TopicNotFoundError, validate_topic_name
from lnc_client.reconnect import ConnectionManager

__all__ = ["TopicCache"]

_GONE_KEPT: Final = 1024
"""Lost topic ids whose names are kept for `successor` (the oldest are forgotten first)."""


class TopicCache:
    """Topic name to id, resolved through the producer's connections.

    Args:
        manager: The producer's connections (requests are retried across reconnects).
    """

    def __init__(self, manager: ConnectionManager) -> None:
        self._manager = manager
        self._ids: dict[str, int] = {}
        self._gone: dict[int, str] = {}

    async def resolve(self, name: str, *, create: bool = False) -> int:
        """Return the id of the topic `name` (cached), optionally creating it.

        Raises:
            InvalidTopicNameError: The name breaks the server's rule (nothing is sent).
            TopicNotFoundError: No such topic and `create` is False.
        """
        cached = self._ids.get(name)
        if cached is not None:
            return cached
        validate_topic_name(name)
        topics = await self._manager.call(operations.list_topics)
        topic_id = next((topic.id for topic in topics if topic.name == name), None)
        if topic_id is None and create:
            topic_id = await self._create(name)
        if topic_id is None:
            raise TopicNotFoundError(name)
        self._ids[name] = topic_id
        return topic_id

    async def _create(self, name: str) -> int | None:
        try:
            created = await self._manager.call(lambda conn: operations.create_topic(conn, name))
        except TopicAlreadyExistsError:
            topics = await self._manager.call(operations.list_topics)
            return next((topic.id for topic in topics if topic.name == name), None)
        return created.id

    async def topic_of(self, topic: int | str | None, topic_id: int | None) -> int:
        """The id of a send's topic, given positionally (id or name) or as `topic_id=`.

        Raises:
            ValueError: No topic, or two different ones.
            TypeError: Neither an int nor a str.
            TopicNotFoundError: No topic of that name.
        """
        chosen = _chosen(topic, topic_id)
        if isinstance(chosen, str):
            return await self.resolve(chosen)
        return chosen

    def cached(self, topic: int | str | None, topic_id: int | None = None) -> int:
        """The id of a topic given by id, or by a name resolved already (never waits).

        Raises:
            ValueError: No topic, two different ones, or a name not resolved yet.
            TypeError: Neither an int nor a str.
        """
        chosen = _chosen(topic, topic_id)
        if isinstance(chosen, int):  # exactly an int (`_chosen`)
            return chosen
        cached = self._ids.get(chosen)
        if cached is not None:
            return cached
        raise ValueError(f"topic {chosen!r} is not resolved yet: await resolve_topic() first")

    def forget_id(self, topic_id: int) -> None:
        """Drop the names cached for `topic_id` (the server no longer knows it)."""
        for name in [name for name, id_ in self._ids.items() if id_ == topic_id]:
            del self._ids[name]
            self._gone[topic_id] = name
        while len(self._gone) > _GONE_KEPT:  # the oldest losses first: bounded memory
            del self._gone[next(iter(self._gone))]

    async def successor(self, topic_id: int) -> int | None:
        """The id now named as the forgotten `topic_id` was; None without one.

        Raises:
            LanceError: The topics could not be listed.
        """
        name = self._gone.get(topic_id)
        if name is None:
            return None
        try:
            found = await self.resolve(name)
        except TopicNotFoundError:
            return None
        return None if found == topic_id else found


def _chosen(topic: int | str | None, topic_id: int | None) -> int | str:
    """The topic of a send, given positionally or as `topic_id=` (the same one if both).

    Raises:
        ValueError: No topic, or two different ones.
        TypeError: Neither an int nor a str (a bool or a float would alias a topic id).
    """
    if topic is not None and topic_id is not None and topic != topic_id:
        raise ValueError("give the topic once: positionally or as topic_id=")
    chosen = topic_id if topic_id is not None else topic
    if chosen is None:
        raise ValueError("a topic (id or name) is required")
    if type(chosen) is not int and not isinstance(chosen, str):  # True == 1 == 1.0: no alias
        raise TypeError(f"a topic is an int id or a str name, not {type(chosen).__name__}")
    return chosen
