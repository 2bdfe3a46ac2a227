"""`seek_to_end()` pins the end when it is called (issue 9, item 4).

Its tail fetch (u64::MAX) leaves at once, so a record that arrives between the call and the next
poll is delivered by that poll, never skipped. `commit()` before any poll commits that pinned end.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lnc_client.config import ProducerConfig, StandaloneConfig
from lnc_client.consumer import StandaloneConsumer
from lnc_client.producer import Producer

from ..helpers import wait_for
from .conftest import ServerUnderTest, start_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerUnderTest]:
    async with start_server(tmp_path / "data") as running:
        async with Producer(running.address, ProducerConfig(linger_ms=0)) as producer:
            await producer.resolve_topic("ends", create=True)
            await producer.send("ends", b"old")
        yield running


def config() -> StandaloneConfig:
    return StandaloneConfig.with_topic_name(
        "end", "ends", poll_interval_ms=5, request_timeout_s=5.0, auto_commit_interval_s=None
    )


@pytest.fixture
async def consumer(server: ServerUnderTest) -> AsyncIterator[StandaloneConsumer]:
    """A consumer that called seek_to_end(), after which a record "new" was sent and acked."""
    async with (
        StandaloneConsumer(server.address, config()) as consumer,
        Producer(server.address, ProducerConfig(linger_ms=0)) as producer,
    ):
        consumer.seek_to_end()
        await pinned(consumer)
        await producer.send("ends", b"new")
        yield consumer


async def pinned(consumer: StandaloneConsumer) -> None:
    """Wait (at most 2 s) until the tail fetch that `seek_to_end()` sent has its answer.

    Without a pinned request (the defect), this waits 2 s and the send comes "between the call
    and the next poll", as the issue describes.
    """

    def answered() -> bool:
        fetches = consumer._fetcher._fetches
        return bool(fetches) and fetches[0].done()

    with contextlib.suppress(TimeoutError):
        await wait_for(answered, timeout=2.0)


async def next_values(consumer: StandaloneConsumer) -> list[bytes]:
    result = await consumer.poll(timeout=5.0)
    assert result is not None
    return [record.value for record in result.records]


async def test_a_record_sent_after_seek_to_end_is_delivered(consumer: StandaloneConsumer) -> None:
    assert await next_values(consumer) == [b"new"]
    assert consumer.lag == 0


async def test_commit_before_a_poll_commits_the_pinned_end(consumer: StandaloneConsumer) -> None:
    assert await consumer.commit() == 8  # the end when seek_to_end() was called
    assert consumer.current_offset == 8
    assert await next_values(consumer) == [b"new"]
