"""StandaloneConsumer against the embedded server: every public method, with exact values.

Each test starts a `LanceServer` on 127.0.0.1 (ephemeral port, fresh data directory), creates
topic 1 "events" and writes acknowledged records with raw `Connection.send_ingest`, so byte
offsets are known exactly: a record of an n-byte value takes n + 5 bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Unpack

import pytest

from lnc_client import consumer as consumer_module
from lnc_client import operations
from lnc_client.admin import LanceClient
from lnc_client.config import (
    ClientConfig,
    ConnectionOptions,
    ProducerConfig,
    ReconnectConfig,
    SeekPosition,
    StandaloneConfig,
    StandaloneOptions,
)
from lnc_client.connection import Connection
from lnc_client.consumer import PollResult, StandaloneConsumer, consumer_id_for
from lnc_client.errors import (
    ConnectionError,
    LanceError,
    ProtocolError,
    ServerCatchingUpError,
    TopicNotFoundError,
    UndecodableRecordError,
)
from lnc_client.offsets import MemoryOffsetStore
from lnc_client.producer import Producer
from lnc_client.protocol.control import TAIL_OFFSET, FetchResult
from lnc_client.protocol.records import (
    RecordDialect,
    RecordType,
    RustRecordType,
    TlvRecord,
    compress_records,
    encode_records,
    encode_values,
)
from lnc_client.server import FaultConfig, LanceServer

from ..helpers import run_python
from .conftest import TcpProxy

TIMEOUT = 5.0


def make_config(
    name: str = "app", topic_id: int = 1, **changes: Unpack[StandaloneOptions]
) -> StandaloneConfig:
    options: StandaloneOptions = {
        "connect_timeout_s": 2.0,
        "request_timeout_s": 2.0,
        "poll_timeout_s": 0.5,
        "poll_interval_ms": 5,
        "reconnect": ReconnectConfig(base_delay_ms=10, max_delay_ms=100),
    }
    options.update(changes)
    return StandaloneConfig(name, topic_id, **options)


async def ingest(
    address: str, payloads: Sequence[bytes], topic_id: int = 1, *, timeout: float = TIMEOUT
) -> None:
    """Write each payload as one batch and wait (up to `timeout`) for every ack."""
    conn = await Connection.open(address, ConnectionOptions(request_timeout_s=timeout))
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[None]] = []
    try:
        for batch_id, payload in enumerate(payloads, 1):
            future: asyncio.Future[None] = loop.create_future()
            futures.append(future)

            def done(
                _: int, error: LanceError | None, future: asyncio.Future[None] = future
            ) -> None:
                if future.done():
                    return
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

            conn.send_ingest(topic_id, payload, batch_id=batch_id, record_count=1, on_done=done)
        await asyncio.wait_for(asyncio.gather(*futures), timeout)
    finally:
        await conn.close()


async def ingest_values(address: str, values: Sequence[bytes], per_batch: int = 10) -> None:
    batches = [values[i : i + per_batch] for i in range(0, len(values), per_batch)]
    await ingest(address, [encode_values(batch) for batch in batches])


async def drain(consumer: StandaloneConsumer, count: int) -> list[PollResult]:
    """Poll until `count` records came (fails after TIMEOUT)."""
    results: list[PollResult] = []
    async with asyncio.timeout(TIMEOUT):
        while sum(r.record_count for r in results) < count:
            result = await consumer.poll()
            if result is not None:
                results.append(result)
    return results


def values_of(results: Sequence[PollResult]) -> list[bytes]:
    return [record.value for result in results for record in result.records]


def assert_contiguous(results: Sequence[PollResult], start: int = 0) -> None:
    for result in results:
        assert result.start_offset == start
        assert result.end_offset == start + len(result.data)
        assert result.record_count == len(result.records) > 0
        assert encode_records(result.records) == result.data
        start = result.end_offset


VALUES = [b"value-%03d" % n for n in range(30)]
"""30 records of 9 bytes: 14 bytes each on the wire, 420 bytes in all."""


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every Fetch the consumer sends, as (start_offset, max_bytes), tail fetches included."""
    seen: list[tuple[int, int]] = []
    real_fetch = operations.fetch

    async def spy(
        conn: Connection, topic_id: int, start: int, size: int, *, timeout: float | None = None
    ) -> FetchResult:
        seen.append((start, size))
        return await real_fetch(conn, topic_id, start, size, timeout=timeout)

    monkeypatch.setattr(operations, "fetch", spy)
    return seen


async def test_contract_example_runs_verbatim(
    events_server: LanceServer, capsys: pytest.CaptureFixture[str]
) -> None:
    await ingest(
        events_server.address, [encode_records([TlvRecord.raw(b"hi"), TlvRecord.json(b"{}")])]
    )
    consumer = await StandaloneConsumer.connect(
        events_server.address, StandaloneConfig(consumer_name="my-app", topic_id=1)
    )
    result = await consumer.poll()  # None when there is nothing new
    assert result is not None
    for record in result.records:
        print(record.record_type, record.value)
    print(result.lag)
    assert await consumer.poll() is None
    await consumer.close()
    assert capsys.readouterr().out == "1 b'hi'\n2 b'{}'\n0\n"


async def test_poll_delivers_everything_once_in_order_with_exact_offsets(
    events_server: LanceServer,
) -> None:
    await ingest_values(events_server.address, VALUES)
    async with StandaloneConsumer(
        events_server.address, make_config(max_fetch_bytes=100)
    ) as consumer:
        results = await drain(consumer, 30)
        assert values_of(results) == VALUES
        assert_contiguous(results)
        assert [(r.start_offset, r.end_offset, r.record_count) for r in results[:2]] == [
            (0, 98, 7),
            (98, 196, 7),
        ]
        assert consumer.current_offset == 420
        assert await consumer.poll(timeout=0.05) is None
        assert consumer.current_offset == 420


async def test_empty_and_zero_length_records_and_nulls(events_server: LanceServer) -> None:
    records = [
        TlvRecord.raw(b""),
        TlvRecord.null(),
        TlvRecord.key_value("k", b"v"),
        TlvRecord.raw(b"x"),
    ]
    await ingest(events_server.address, [encode_records(records)])
    async with StandaloneConsumer(
        events_server.address, make_config(max_fetch_bytes=6)
    ) as consumer:
        results = await drain(consumer, 4)
    assert [r for result in results for r in result.records] == records
    assert_contiguous(results)


async def test_compressed_envelopes_are_opened(events_server: LanceServer) -> None:
    inner = [b"compressible " * 20 + b"%d" % n for n in range(50)]
    envelope = compress_records(encode_values(inner))
    await ingest(events_server.address, [envelope, encode_values([b"plain"])])
    async with StandaloneConsumer(events_server.address, make_config()) as consumer:
        results = await drain(consumer, 51)
    assert values_of(results) == [*inner, b"plain"]
    assert results[0].data == envelope + encode_values([b"plain"])
    assert results[0].end_offset == len(envelope) + 10


@pytest.mark.parametrize("compression", [False, True])
async def test_records_from_the_producer_arrive_in_order(
    events_server: LanceServer, compression: bool
) -> None:
    values = [b"event %04d " % n + b"x" * (n % 50) for n in range(500)]
    config = ProducerConfig(compression=compression, batch_size=4096, linger_ms=1)
    async with Producer(events_server.address, config) as producer:
        for value in values[:250]:
            await producer.send_async(1, value)
        await producer.send_batch(1, values[250:])
        await producer.flush()
    async with StandaloneConsumer(
        events_server.address, make_config(max_fetch_bytes=1000)
    ) as consumer:
        results = await drain(consumer, 500)
        assert values_of(results) == values
        stored = sum(len(r.data) for r in results)
        assert consumer.current_offset == stored == consumer.high_water_mark
    assert (stored < sum(len(v) + 5 for v in values)) is compression


@pytest.mark.parametrize("where", ["server", "client"])
async def test_seven_byte_windows_split_every_record(
    events_server: LanceServer, where: str
) -> None:
    values = [bytes([n]) * (n % 23) for n in range(60)]
    await ingest_values(events_server.address, values, per_batch=7)
    if where == "server":
        events_server.faults = FaultConfig(max_fetch_bytes=7)
        config = make_config()
    else:
        config = make_config(max_fetch_bytes=7)
    async with StandaloneConsumer(events_server.address, config) as consumer:
        results = await drain(consumer, 60)
        assert values_of(results) == values
        assert_contiguous(results)
        assert consumer.current_offset == sum(len(v) + 5 for v in values)
        assert await consumer.poll(timeout=0.05) is None


@pytest.mark.parametrize(
    ("prefetch", "expected"),
    [
        (False, [(0, 64), (64, 102_420 - 64), (102_420, 64), (102_435, 64)]),
        (True, [(0, 64), (64, 64), (128, 102_420 - 128), (102_420, 64)]),
    ],
)
async def test_a_record_larger_than_the_window_grows_it_then_it_shrinks_back(
    events_server: LanceServer,
    fetches: list[tuple[int, int]],
    prefetch: bool,
    expected: list[tuple[int, int]],
) -> None:
    """The prefetched window is sent before the tail is decoded, so it grows one window later."""
    big = bytes(range(256)) * 400
    await ingest(
        events_server.address, [encode_values([b"a" * 10]), encode_values([big, b"b" * 10])]
    )
    config = make_config(max_fetch_bytes=64, prefetch=prefetch)
    async with StandaloneConsumer(events_server.address, config) as consumer:
        results = await drain(consumer, 3)
        assert await consumer.poll(timeout=0.02) is None
    assert values_of(results) == [b"a" * 10, big, b"b" * 10]
    assert [r.record_count for r in results] == [1, 1, 1]
    assert [f for f in fetches if f[0] != TAIL_OFFSET][:4] == expected


async def poll_forever(consumer: StandaloneConsumer) -> None:
    while True:
        await consumer.poll()


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"\x01\xff\xff\xff\x7fjunk", id="claims-too-much"),
        pytest.param(b"\xc0\x06\x00\x00\x00\x7f\x01\x00\x00\x00\x00", id="bad-envelope"),
    ],
)
async def test_an_undecodable_record_names_topic_and_offset_and_seek_goes_past_it(
    events_server: LanceServer, garbage: bytes
) -> None:
    good = encode_values([b"after"])
    await ingest(events_server.address, [encode_values([b"before"]), garbage, good])
    async with StandaloneConsumer(
        events_server.address, make_config(max_fetch_bytes=16)
    ) as consumer:
        assert values_of(await drain(consumer, 1)) == [b"before"]
        with pytest.raises(UndecodableRecordError) as caught:
            await poll_forever(consumer)
        assert isinstance(caught.value, ProtocolError)
        assert caught.value.topic_id == consumer.topic_id
        assert caught.value.offset == consumer.current_offset == len(encode_values([b"before"]))
        assert f"offset {caught.value.offset} of topic {consumer.topic_id}" in str(caught.value)
        consumer.seek(caught.value.offset + len(garbage))  # the documented way past it
        assert values_of(await drain(consumer, 1)) == [b"after"]


async def test_seek_rewind_and_end(
    events_server: LanceServer, fetches: list[tuple[int, int]]
) -> None:
    await ingest_values(events_server.address, VALUES)
    async with StandaloneConsumer(events_server.address, make_config()) as consumer:
        assert values_of(await drain(consumer, 30)) == VALUES
        consumer.rewind()
        assert consumer.current_offset == 0
        assert values_of(await drain(consumer, 30)) == VALUES
        consumer.seek(14 * 28)
        assert values_of(await drain(consumer, 2)) == VALUES[28:]
        consumer.seek_to(SeekPosition.offset(14 * 29))
        assert values_of(await drain(consumer, 1)) == VALUES[29:]
        consumer.seek_to(SeekPosition.BEGINNING)
        assert consumer.current_offset == 0
        consumer.seek_to(SeekPosition.END)
        assert consumer.current_offset == 0
        fetches.clear()
        assert await consumer.poll(timeout=0.05) is None
        assert fetches[0] == (TAIL_OFFSET, 1)
        assert (TAIL_OFFSET, 1) == (2**64 - 1, 1)
        assert consumer.current_offset == 420
        await ingest_values(events_server.address, [b"new"])
        assert values_of(await drain(consumer, 1)) == [b"new"]
        consumer.rewind()
        assert await consumer.seek_to_end_now() == 428
        assert consumer.current_offset == 428
        assert consumer.lag == 0
        for bad in (-1, 2**64 - 1):
            with pytest.raises(ValueError, match="offset"):
                consumer.seek(bad)
        with pytest.raises(ValueError, match="not a seek position"):
            consumer.seek_to(("start", 0))  # type: ignore[arg-type]


async def test_seek_drops_a_window_in_flight(events_server: LanceServer) -> None:
    await ingest_values(events_server.address, VALUES)
    async with StandaloneConsumer(
        events_server.address, make_config(max_fetch_bytes=14)
    ) as consumer:
        first = await consumer.poll()
        assert first is not None
        assert values_of([first]) == VALUES[:1]
        consumer.seek(14 * 10)
        assert values_of(await drain(consumer, 20)) == VALUES[10:]


async def test_lag_is_measured_against_the_real_end(
    events_server: LanceServer, fetches: list[tuple[int, int]]
) -> None:
    await ingest_values(events_server.address, VALUES)
    config = make_config(max_fetch_bytes=140, prefetch=False)
    async with StandaloneConsumer(events_server.address, config) as consumer:
        assert consumer.lag == 0
        seen = [
            (r.start_offset, r.end_offset, r.high_water_mark, r.lag)
            for r in await drain(consumer, 30)
        ]
        assert seen == [(n * 140, n * 140 + 140, 420, 420 - n * 140 - 140) for n in range(3)]
        assert consumer.lag == 0
        await ingest_values(events_server.address, VALUES[:10])
        assert consumer.lag == 0
        result = await consumer.poll()
        assert result is not None
        assert (result.end_offset, result.high_water_mark, result.lag) == (560, 560, 0)
        consumer.rewind()
        assert consumer.lag == 560
        result = await consumer.poll()
        assert result is not None
        assert (result.high_water_mark, result.lag, consumer.lag) == (560, 420, 420)
    tails = [f for f in fetches if f[0] == TAIL_OFFSET]
    assert 1 <= len(tails) < len(fetches) - len(tails)


async def test_catching_up_backs_off_then_raises_after_its_bound(
    events_server: LanceServer, fetches: list[tuple[int, int]]
) -> None:
    await ingest_values(events_server.address, VALUES)
    config = make_config(catching_up_backoff_s=0.05, catching_up_timeout_s=0.3)
    async with StandaloneConsumer(events_server.address, config) as consumer:
        consumer.seek(5000)
        fetches.clear()
        assert await consumer.poll(timeout=0.2) is None
        assert consumer.high_water_mark == 420
        assert consumer.lag == 0
        data_fetches = [f for f in fetches if f[0] != TAIL_OFFSET]
        assert data_fetches[:3] == [(5000, 1024 * 1024)] * 3
        assert len(data_fetches) == 3
        with pytest.raises(ServerCatchingUpError) as caught:
            await consumer.poll(timeout=1.0)
        assert caught.value.server_offset == 420
        assert "offset 5000 of topic 1 is still past the server's end (420)" in str(caught.value)
        assert consumer.current_offset == 5000
        consumer.rewind()
        assert values_of(await drain(consumer, 30)) == VALUES


async def test_catching_up_without_a_bound_waits_until_the_data_is_there(
    events_server: LanceServer,
) -> None:
    await ingest_values(events_server.address, VALUES[:2])
    config = make_config(catching_up_backoff_s=0.01, catching_up_timeout_s=None)
    async with StandaloneConsumer(events_server.address, config) as consumer:
        consumer.seek(42)
        for _ in range(3):
            assert await consumer.poll(timeout=0.05) is None
        await ingest_values(events_server.address, VALUES[2:])
        assert values_of(await drain(consumer, 27)) == VALUES[3:]


async def test_start_positions_and_committed_offsets(
    events_server: LanceServer, tmp_path: Path
) -> None:
    await ingest_values(events_server.address, VALUES)
    store = MemoryOffsetStore()
    config = make_config(auto_commit_interval_s=None, start_position=SeekPosition.END)
    async with StandaloneConsumer(events_server.address, config, store) as consumer:
        assert consumer.current_offset == 420
        assert consumer.committed_offset is None
    assert await store.load("app", 1, topic_name="events") is None
    config = make_config(start_offset=14 * 25)
    async with StandaloneConsumer(events_server.address, config, store) as consumer:
        assert values_of(await drain(consumer, 5)) == VALUES[25:]
        consumer.seek(14 * 20)
        assert await consumer.commit() == 280
        assert consumer.committed_offset == 280
    assert await store.load("app", 1, topic_name="events") == 280
    async with StandaloneConsumer(events_server.address, make_config(), store) as consumer:
        assert consumer.current_offset == 280
        assert values_of(await drain(consumer, 10)) == VALUES[20:]
    async with StandaloneConsumer(events_server.address, make_config("other"), store) as consumer:
        assert consumer.current_offset == 0


async def test_file_store_from_offset_dir(events_server: LanceServer, tmp_path: Path) -> None:
    await ingest_values(events_server.address, VALUES)
    config = make_config("my-app", offset_dir=tmp_path / "offsets", auto_commit_interval_s=None)
    async with StandaloneConsumer(events_server.address, config) as consumer:
        await drain(consumer, 30)
        consumer.seek(140)
        await consumer.commit()
    assert (tmp_path / "offsets" / "my-app.topic-events.offset").read_bytes() == (
        b'{"consumer_name":"my-app","offset":140,"topic_id":1,"topic_name":"events","version":1}\n'
    )
    consumer = await StandaloneConsumer.connect(events_server.address, config)
    assert consumer.current_offset == 140
    await consumer.close()
    with pytest.raises(ValueError, match="non-empty consumer name"):
        await StandaloneConsumer.connect(
            events_server.address, make_config("", offset_dir=tmp_path)
        )


async def test_auto_commit_every_interval_and_on_close(events_server: LanceServer) -> None:
    await ingest_values(events_server.address, VALUES)
    store = MemoryOffsetStore()
    commits: list[int] = []
    config = make_config(max_fetch_bytes=140, auto_commit_interval_s=0.3, prefetch=False)
    consumer = await StandaloneConsumer.connect(
        events_server.address, config, store, on_commit=commits.append
    )
    assert await consumer.poll() is not None
    assert await consumer.poll() is not None
    assert commits == []
    assert await store.load("app", 1, topic_name="events") is None
    await asyncio.sleep(0.3)
    assert await consumer.poll() is not None
    assert commits == [280]
    assert await store.load("app", 1, topic_name="events") == 280
    assert consumer.committed_offset == 280
    assert await consumer.poll(timeout=0.05) is None
    assert commits == [280]
    await consumer.close()
    assert commits == [280, 420]
    assert await store.load("app", 1, topic_name="events") == 420


async def test_manual_commit_mode_never_commits_by_itself(events_server: LanceServer) -> None:
    await ingest_values(events_server.address, VALUES)
    store = MemoryOffsetStore()
    config = make_config().with_manual_commit()
    async with StandaloneConsumer(events_server.address, config, store) as consumer:
        await drain(consumer, 30)
    assert await store.load("app", 1, topic_name="events") is None


async def test_server_side_subscribe_and_commit(events_server: LanceServer) -> None:
    await ingest_values(events_server.address, VALUES)
    config = make_config("svc", server_side_offsets=True, auto_commit_interval_s=None)
    async with StandaloneConsumer(events_server.address, config) as consumer:
        assert consumer.consumer_id == consumer_id_for("svc")
        await drain(consumer, 10)
        assert await consumer.commit() == consumer.current_offset
        committed = consumer.current_offset
    conn = await Connection.open(events_server.address)
    try:
        ack = await operations.subscribe(conn, 1, 0, 1024, consumer_id_for("svc"))
    finally:
        await conn.close()
    assert ack.offset == committed
    async with StandaloneConsumer(events_server.address, config) as consumer:
        assert consumer.current_offset == committed
    fresh = make_config("svc", server_side_offsets=True, auto_commit_interval_s=None)
    async with StandaloneConsumer(events_server.address, fresh, MemoryOffsetStore()) as consumer:
        assert consumer.current_offset == committed


async def test_server_side_auto_commit_is_sent_without_blocking_the_poll(
    events_server: LanceServer,
) -> None:
    await ingest_values(events_server.address, VALUES)
    config = make_config("auto", server_side_offsets=True, auto_commit_interval_s=0.0)
    async with StandaloneConsumer(events_server.address, config) as consumer:
        await drain(consumer, 30)
        assert await consumer.poll(timeout=0.05) is None
    async with StandaloneConsumer(events_server.address, config, MemoryOffsetStore()) as consumer:
        assert consumer.current_offset == 420


async def test_topic_by_name_and_by_id(events_server: LanceServer) -> None:
    await ingest_values(events_server.address, VALUES[:3])
    by_name = StandaloneConfig.with_topic_name("app", "events", poll_interval_ms=5)
    async with StandaloneConsumer(events_server.address, by_name) as consumer:
        assert (consumer.topic_id, consumer.topic_name) == (1, "events")
        assert values_of(await drain(consumer, 3)) == VALUES[:3]
    async with StandaloneConsumer(events_server.address, make_config()) as consumer:
        assert (consumer.topic_id, consumer.topic_name) == (1, "events")
    with pytest.raises(TopicNotFoundError):
        await StandaloneConsumer.connect(
            events_server.address, StandaloneConfig.with_topic_name("app", "missing")
        )
    with pytest.raises(TopicNotFoundError):
        await StandaloneConsumer.connect(events_server.address, make_config(topic_id=7))
    with pytest.raises(ValueError, match="topic_id or a topic_name"):
        StandaloneConsumer(events_server.address, StandaloneConfig("app"))


async def test_async_iteration_over_records_and_batches(events_server: LanceServer) -> None:
    await ingest_values(events_server.address, VALUES)
    async with StandaloneConsumer(
        events_server.address, make_config(max_fetch_bytes=140)
    ) as consumer:
        received: list[bytes] = []
        async with asyncio.timeout(TIMEOUT):
            async for record in consumer:
                received.append(record.value)
                if len(received) == 25:
                    break
        assert received == VALUES[:25]
        consumer.seek(14 * 25)
        batches: list[PollResult] = []
        async with asyncio.timeout(TIMEOUT):
            async for batch in consumer.batches():
                batches.append(batch)
                if sum(b.record_count for b in batches) == 5:
                    break
        assert values_of(batches) == VALUES[25:]


async def test_close_ends_an_iteration_and_later_calls_fail(events_server: LanceServer) -> None:
    consumer = await StandaloneConsumer.connect(events_server.address, make_config())
    received: list[TlvRecord] = []

    async def iterate() -> None:
        async for record in consumer.records(timeout=5.0):
            received.append(record)

    task = asyncio.create_task(iterate())
    await asyncio.sleep(0.05)
    await consumer.close()
    await asyncio.wait_for(task, TIMEOUT)
    assert received == []
    assert consumer.closed
    with pytest.raises(ConnectionError, match="closed"):
        await consumer.poll()
    await consumer.close()


async def test_misuse_is_reported(events_server: LanceServer) -> None:
    consumer = StandaloneConsumer(events_server.address, make_config())
    with pytest.raises(RuntimeError, match="not started"):
        await consumer.poll()
    await consumer.start()
    assert await consumer.start() is consumer
    first = asyncio.create_task(consumer.poll(timeout=0.2))
    await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError, match="already running"):
        await consumer.poll()
    assert await first is None
    await consumer.close()


async def test_cancelling_a_poll_keeps_the_consumer_consistent(
    events_server: LanceServer, proxy: Callable[[str], Awaitable[TcpProxy]]
) -> None:
    await ingest_values(events_server.address, VALUES)
    slow = await proxy(events_server.address)
    config = make_config(max_fetch_bytes=70)
    async with StandaloneConsumer(slow.address, config) as consumer:
        slow.delay_s = 0.25
        for _ in range(5):
            task = asyncio.create_task(consumer.poll())
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        slow.delay_s = 0.0
        assert values_of(await drain(consumer, 30)) == VALUES
        assert await consumer.poll(timeout=0.2) is None


def test_consumer_id_is_fnv1a_64_and_the_same_in_another_process() -> None:
    assert consumer_id_for("") == 0xCBF29CE484222325
    assert consumer_id_for("a") == 0xAF63DC4C8601EC8C
    assert consumer_id_for("foobar") == 0x85944171F73967E8
    code = "from lnc_client.consumer import consumer_id_for as f; print(f('my-app'), f('zé'))"
    outputs = {
        run_python(code, env={"PYTHONHASHSEED": seed}, timeout=30).stdout for seed in ("1", "2")
    }
    assert outputs == {f"{consumer_id_for('my-app')} {consumer_id_for('zé')}\n"}


def test_poll_result_properties() -> None:
    empty = PollResult(b"", [], 10, 10, 50, 0)
    assert (empty.is_empty, empty.lag) == (True, 40)
    behind = PollResult(b"\x01\x00\x00\x00\x00", [TlvRecord(RecordType.RAW_DATA, b"")], 0, 5, 3, 1)
    assert (behind.is_empty, behind.lag) == (False, 0)
    assert consumer_module.__all__ == ["PollResult", "StandaloneConsumer", "consumer_id_for"]


async def test_windows_over_16_mib_on_either_server(events_server: LanceServer) -> None:
    """Real lance has no window cap: the client caps what it asks at what a frame may carry
    (16 MiB for LanceClient, `max_fetch_bytes` for a consumer), so neither resets nor raises."""
    values = [bytes([n % 251]) * (1 << 20) for n in range(20)]  # 20 MiB in 1 MiB records
    await ingest(events_server.address, [encode_values([value]) for value in values])
    total = sum(len(v) + 5 for v in values)
    host, _, port = events_server.address.rpartition(":")
    async with LanceClient(ClientConfig(host=host, port=int(port), request_timeout_s=10.0)) as c:
        window = await c.fetch(1, 0, 32 << 20)
        assert 0 < len(window.data) <= 16 << 20
        assert window.data[:5] == encode_values([values[0]])[:5]
    config = make_config(max_fetch_bytes=32 << 20, request_timeout_s=10.0)
    async with StandaloneConsumer(events_server.address, config) as consumer:
        results = await drain(consumer, 20)
        assert values_of(results) == values
        assert consumer.current_offset == total


async def test_a_topic_written_by_the_rust_client_read_with_its_dialect(
    events_server: LanceServer,
) -> None:
    """Lance's Rust client frames every record with the 5-byte header: 0x02 is Tombstone, 0x10
    Compressed, 0xFF Unknown. `record_dialect=RUST` returns them as written."""
    written = [
        (RustRecordType.DATA, b"k=1"),
        (RustRecordType.TOMBSTONE, b""),
        (RustRecordType.UNKNOWN, b"opaque"),
        (RustRecordType.COMPRESSED, b"\x00" * 10),
        (0xC0, b"not ours"),
    ]
    stream = b"".join(bytes([t]) + len(v).to_bytes(4, "little") + v for t, v in written)
    await ingest(events_server.address, [stream[:14], stream[14:]])
    config = make_config(max_fetch_bytes=7, record_dialect=RecordDialect.RUST)
    async with StandaloneConsumer(events_server.address, config) as consumer:
        results = await drain(consumer, len(written))
        assert consumer.current_offset == len(stream)
    assert [(r.record_type, r.value) for x in results for r in x.records] == written
