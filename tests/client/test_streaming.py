"""StreamingConsumer against the embedded server: Subscribe, server-side offsets, auto-commit,
and `async for` that ends on close or at a limit without committing unprocessed records."""

from __future__ import annotations

import asyncio

import pytest

from lnc_client import Producer, ProducerConfig, StandaloneConfig, StandaloneConsumer
from lnc_client.consumer import consumer_id_for
from lnc_client.offsets import MemoryOffsetStore
from lnc_client.streaming import StreamingConsumer

from ..helpers import wait_for
from .conftest import ServerUnderTest


def config(group: str = "grp", **changes: object) -> StandaloneConfig:
    options: dict[str, object] = {"topic_name": "events", "poll_timeout_s": 0.05}
    options.update(changes)
    return StandaloneConfig(group, **options)  # type: ignore[arg-type]


async def produce(server: ServerUnderTest, *values: str, compress: bool = False) -> None:
    settings = ProducerConfig(compression=compress)
    async with Producer(server.address, settings) as producer:
        await producer.send_batch("events", [v.encode() for v in values])


async def take(server: ServerUnderTest, limit: int, group: str = "grp") -> list[bytes]:
    async with StreamingConsumer(server.address, config(group)) as consumer:
        got: list[bytes] = []
        async with asyncio.timeout(1):
            async for record in consumer.records(limit=limit, timeout=0.05):
                got.append(record.value)
        return got


async def test_a_restarted_group_resumes_from_its_server_side_commit(
    events_server: ServerUnderTest,
) -> None:
    await produce(events_server, "a", "b", "c")
    assert await take(events_server, 3) == [b"a", b"b", b"c"]
    await produce(events_server, "d")
    assert await take(events_server, 1) == [b"d"]
    assert await take(events_server, 4, group="other") == [b"a", b"b", b"c", b"d"]


async def test_auto_commit_reaches_the_server_while_polling(events_server: ServerUnderTest) -> None:
    await produce(events_server, "a")
    commits: list[int] = []
    settings = config(auto_commit_interval_s=0.0)
    async with StreamingConsumer(events_server.address, settings, on_commit=commits.append) as c:
        assert c.consumer_id == consumer_id_for("grp")
        first = await c.poll(2)
        assert first is not None
        assert await c.poll(0.05) is None
        assert commits[-1] == first.end_offset
        await produce(events_server, "b")
        async with StreamingConsumer(events_server.address, config()) as other:
            batch = await other.poll(2)
            assert batch is not None
            assert [r.value for r in batch.records] == [b"b"]


async def test_a_limit_inside_a_batch_leaves_the_rest_uncommitted(
    events_server: ServerUnderTest,
) -> None:
    await produce(events_server, "r0", "r1", "r2", "r3", "r4")
    assert await take(events_server, 2) == [b"r0", b"r1"]
    assert await take(events_server, 2) == [b"r2", b"r3"]
    async with StreamingConsumer(events_server.address, config()) as consumer:
        async for record in consumer.records(timeout=0.05):
            assert record.value == b"r4"
            break
    assert await take(events_server, 1) == [b"r4"]


async def test_a_compressed_batch_is_given_again_whole(events_server: ServerUnderTest) -> None:
    values = [f"value-{i:03d}-" * 20 for i in range(5)]
    await produce(events_server, *values, compress=True)
    assert await take(events_server, 2) == [v.encode() for v in values[:2]]
    assert await take(events_server, 5) == [v.encode() for v in values]


@pytest.mark.parametrize("kind", [StreamingConsumer, StandaloneConsumer])
async def test_async_for_ends_cleanly_on_close(
    events_server: ServerUnderTest, kind: type[StandaloneConsumer]
) -> None:
    await produce(events_server, "a")
    consumer = await kind(events_server.address, config()).start()
    seen: list[bytes] = []

    async def loop() -> None:
        async for record in consumer:
            seen.append(record.value)

    task = asyncio.get_running_loop().create_task(loop())
    await wait_for(lambda: seen == [b"a"])
    await consumer.close()
    await asyncio.wait_for(task, 2)
    assert task.exception() is None


async def test_batches_limit(events_server: ServerUnderTest) -> None:
    await produce(events_server, "a")
    await produce(events_server, "b")
    async with StreamingConsumer(events_server.address, config(max_fetch_bytes=8)) as consumer:
        got = [[r.value for r in b.records] async for b in consumer.batches(limit=1)]
        assert got == [[b"a"]]
        await consumer.stop()
        assert [b async for b in consumer.batches()] == []


def test_a_group_name_is_required() -> None:
    with pytest.raises(ValueError, match="consumer_name"):
        StreamingConsumer("127.0.0.1:1", StandaloneConfig(topic_id=1))


async def test_standalone_records_limit_and_break_leave_the_rest_for_later(
    events_server: ServerUnderTest,
) -> None:
    await produce(events_server, "r0", "r1", "r2", "r3")
    store = MemoryOffsetStore()
    settings = StandaloneConfig("solo", topic_name="events", poll_timeout_s=0.05)

    async def take_standalone(limit: int | None) -> list[bytes]:
        async with StandaloneConsumer(events_server.address, settings, store) as consumer:
            got = []
            async for record in consumer.records(limit=limit):
                got.append(record.value)
                if limit is None:
                    break
            return got

    assert await take_standalone(2) == [b"r0", b"r1"]
    assert await take_standalone(None) == [b"r2"]
    assert await take_standalone(2) == [b"r2", b"r3"]


async def test_seek_to_end_now_wins_over_the_step_back_of_an_open_record_loop(
    events_server: ServerUnderTest,
) -> None:
    await produce(events_server, "r0", "r1", "r2")
    settings = StandaloneConfig("solo", topic_name="events", poll_timeout_s=0.05)
    async with StandaloneConsumer(events_server.address, settings) as consumer:
        loop = consumer.records()
        assert (await anext(loop)).value == b"r0"  # handed out, not finished
        end = await consumer.seek_to_end_now()
    assert consumer.committed_offset == end > 0
    await loop.aclose()


@pytest.mark.parametrize("stop_after", [1, 37, 100])
async def test_a_break_inside_a_run_of_equal_records_resumes_at_that_record(
    events_server: ServerUnderTest, stop_after: int
) -> None:
    """A batch of equal-sized records is handed out lazily (a run); a break still rewinds to
    the exact record the loop broke at (it was not processed: the loop did not ask for more)."""
    values = [f"v{i:03d}".encode() for i in range(100)]
    await produce(events_server, *(v.decode() for v in values))
    store = MemoryOffsetStore()
    settings = StandaloneConfig("solo", topic_name="events", poll_timeout_s=0.05)
    async with StandaloneConsumer(events_server.address, settings, store) as consumer:
        first = []
        async for record in consumer:
            first.append(record.value)
            if len(first) == stop_after:
                break
    async with StandaloneConsumer(events_server.address, settings, store) as consumer:
        again = [record.value async for record in consumer.records(limit=101 - stop_after)]
    assert first == values[:stop_after]
    assert again == values[stop_after - 1 :]
