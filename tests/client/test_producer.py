"""Producer against the embedded server: batching, window, memory, handles, errors and faults.

Every test starts a `LanceServer` on 127.0.0.1 (ephemeral port, fresh data directory) and reads
what was stored back over the wire (Fetch + `decode_stream` with the partial tail carried), so
"every acknowledged record is consumed, in order" is checked on the server's real bytes.
Records are numbered (`rec(i)`); fault tests assert that every acknowledged number is stored,
that the first occurrences are in send order, and that duplicates only come from resent batches.
Faults the server cannot inject itself (a cut in the middle of a frame, a peer that stops
reading) go through `FaultProxy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from lnc_client.admin import LanceClient
from lnc_client.config import (
    BufferFullPolicy,
    ClientConfig,
    ProducerConfig,
    ReconnectConfig,
    parse_address,
)
from lnc_client.errors import (
    AccessDeniedError,
    BackpressureError,
    ConnectionError,
    InvalidTopicNameError,
    LanceError,
    TimeoutError,
    TopicNotFoundError,
)
from lnc_client.producer import Producer, SendAck, accumulator
from lnc_client.protocol.records import (
    RecordType,
    TlvRecord,
    decode_stream,
    encode_values,
)
from lnc_client.server import FaultConfig, LanceServer

from ..helpers import wait_for
from .conftest import ServerUnderTest, start_server

FAST = ReconnectConfig(base_delay_ms=5, max_delay_ms=50, jitter_factor=0.0)


def rec(i: int, size: int = 20) -> bytes:
    """Record number i: its number in 8 digits, padded to `size` bytes."""
    return f"{i:08d}".encode().ljust(size, b".")


def cfg(**changes: object) -> ProducerConfig:
    """Small, fast defaults for tests."""
    values: dict[str, object] = {
        "linger_ms": 2,
        "connect_timeout_s": 2.0,
        "request_timeout_s": 2.0,
        "delivery_timeout_s": 5.0,
        "reconnect": FAST,
    }
    values.update(changes)
    return ProducerConfig(**values)  # type: ignore[arg-type]


def admin_for(address: str, auth_token: str | None = None) -> LanceClient:
    parsed = parse_address(address)
    return LanceClient(
        ClientConfig(
            host=parsed.host,
            port=parsed.port,
            request_timeout_s=2.0,
            reconnect=FAST,
            auth_token=auth_token,
        )
    )


async def read_back(
    address: str, topic: int, window: int = 4096, auth_token: str | None = None
) -> list[TlvRecord]:
    """Every record stored in `topic`, read with small fetch windows (records get cut)."""
    records: list[TlvRecord] = []
    tail = b""
    offset = 0
    async with admin_for(address, auth_token) as admin:
        end = await admin.end_offset(topic)
        while offset < end:
            result = await admin.fetch(topic, offset, window)
            offset = result.next_offset
            got, used = decode_stream(tail + bytes(result.data))
            records += got
            tail = (tail + bytes(result.data))[used:]
    assert tail == b""
    return records


async def values_of(address: str, topic: int) -> list[bytes]:
    return [r.value for r in await read_back(address, topic)]


def assert_at_least_once_in_order(stored: list[bytes], acked: list[bytes]) -> None:
    """Every acked record is stored; first occurrences keep send order; nothing unknown."""
    numbers = [int(v[:8]) for v in stored]
    first: list[int] = []
    seen: set[int] = set()
    for n in numbers:
        if n not in seen:
            seen.add(n)
            first.append(n)
    assert first == sorted(first), "records are out of order"
    missing = {int(v[:8]) for v in acked} - seen
    assert not missing, f"acknowledged records missing: {sorted(missing)[:10]}"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerUnderTest]:
    async with start_server(tmp_path / "data", shutdown_grace_secs=1.0) as srv:
        async with admin_for(srv.address) as admin:
            await admin.create_topic("one")
            await admin.create_topic("two")
        yield srv


@pytest.fixture
async def connect(server: LanceServer) -> AsyncIterator[Callable[..., Awaitable[Producer]]]:
    """`await connect(config, address=None)` returns a started producer, closed at the end."""
    made: list[Producer] = []

    async def make(config: ProducerConfig | None = None, address: str | None = None) -> Producer:
        producer = await Producer.connect(address or server.address, config or cfg())
        made.append(producer)
        return producer

    yield make
    for producer in made:
        with contextlib.suppress(LanceError):
            await producer.close(timeout=1.0)


# --- the contract ---------------------------------------------------------------------------------


async def test_contract_example_runs_verbatim(server: LanceServer) -> None:
    producer = await Producer.connect(server.address, ProducerConfig())
    batch_id = await producer.send(topic_id=1, data=b'{"price": 6942.25}')
    second = await producer.send_async(topic_id=1, data=b"fire and forget")
    await producer.close()
    assert (batch_id, second) == (1, 2)
    assert await values_of(server.address, 1) == [b'{"price": 6942.25}', b"fire and forget"]
    assert producer.closed
    with pytest.raises(ConnectionError, match="closed"):
        await producer.send_async(1, b"late")


async def test_async_with_and_name_addressing(server: LanceServer) -> None:
    async with Producer(server.address, cfg()) as producer:
        await producer.send("two", b"by-name")
        await producer.send(topic="two", data=b"kw")
        assert await producer.resolve_topic("two") == 2
        producer.send_nowait("two", b"cached")
        with pytest.raises(ValueError, match="not resolved"):
            producer.send_nowait("one", b"x")
        with pytest.raises(TopicNotFoundError):
            await producer.send("missing", b"x")
        with pytest.raises(InvalidTopicNameError):
            await producer.send("bad_name", b"x")
        with pytest.raises(ValueError, match="once"):
            await producer.send(1, b"x", topic_id=2)
        await producer.flush()
    assert await values_of(server.address, 2) == [b"by-name", b"kw", b"cached"]


async def test_connect_for_topic_creates(server: LanceServer) -> None:
    producer, topic_id = await Producer.connect_for_topic(server.address, "fresh", cfg())
    assert topic_id == 3
    await producer.send(topic_id, b"a")
    await producer.close()
    with pytest.raises(TopicNotFoundError):
        await Producer.connect_for_topic(server.address, "absent", cfg(), create=False)
    assert await values_of(server.address, 3) == [b"a"]


# --- batching -------------------------------------------------------------------------------------


async def test_batches_close_at_batch_size(connect: Callable[..., Awaitable[Producer]]) -> None:
    producer = await connect(cfg(batch_size=250, linger_ms=10_000))
    ids = [await producer.send_async(1, rec(i)) for i in range(25)]
    # 25-byte TLV records: a batch closes when it reaches 250 bytes, i.e. after 10 records.
    assert ids == [1] * 10 + [2] * 10 + [3] * 5
    assert producer.metrics().batches_sent == 2
    await producer.flush()
    m = producer.metrics()
    assert (m.batches_sent, m.records_sent, m.bytes_sent) == (3, 25, 25 * 25)
    assert (m.batches_acked, m.records_acked, m.buffered_bytes) == (3, 25, 0)


async def test_stored_bytes_are_exact_tlv(
    server: LanceServer, connect: Callable[..., Awaitable[Producer]]
) -> None:
    producer = await connect(cfg(batch_size=1 << 20))
    values = [rec(i, 100) for i in range(50)]
    for value in values[:25]:
        await producer.send_async(1, value)
    await producer.send_batch(1, values[25:])
    await producer.flush()
    async with admin_for(server.address) as admin:
        stored = await admin.fetch(1, 0, 1 << 20)
    assert bytes(stored.data) == encode_values(values)


async def test_a_lone_record_does_not_linger(connect: Callable[..., Awaitable[Producer]]) -> None:
    producer = await connect(cfg(linger_ms=60_000))
    started = time.monotonic()
    handles = [await producer.send_handle(1, rec(i)) for i in range(5)]
    assert producer.metrics().batches_sent == 0  # sealed at the end of this loop iteration
    acks = await asyncio.gather(*handles)
    assert time.monotonic() - started < 1.0
    assert acks == [SendAck(1, 1, i) for i in range(5)]
    assert producer.metrics().batches_sent == 1


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_linger_seals_once_per_batch_while_one_is_in_flight(
    server: LanceServer, connect: Callable[..., Awaitable[Producer]]
) -> None:
    # margins wide enough for a loaded CI machine: checks at 50 ms and 350 ms around a 200 ms
    # linger, all well before batch 1's Ack at 1 s
    producer = await connect(cfg(linger_ms=200))
    server.faults = FaultConfig(ack_delay_ms=1000)
    first = await producer.send_handle(1, rec(0))
    await asyncio.sleep(0)  # batch 1 goes at once and stays in flight
    started = time.monotonic()
    handles = [await producer.send_handle(1, rec(i)) for i in range(1, 6)]
    await asyncio.sleep(0.05)
    assert producer.metrics().batches_sent == 1  # batch 2 lingers
    await asyncio.sleep(0.3)
    assert producer.metrics().batches_sent == 2  # sealed by its linger, not by batch 1's ack
    assert time.monotonic() - started >= 0.195
    assert not first.done()
    server.faults = FaultConfig()
    assert await asyncio.gather(*handles) == [SendAck(2, 1, i) for i in range(5)]


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_records_gather_until_the_in_flight_batch_is_acked(
    server: LanceServer, connect: Callable[..., Awaitable[Producer]]
) -> None:
    producer = await connect(cfg(linger_ms=60_000))
    server.faults = FaultConfig(ack_delay_ms=100)
    await producer.send_async(1, rec(0))
    await asyncio.sleep(0)
    handles = [await producer.send_handle(1, rec(i)) for i in range(1, 4)]
    await asyncio.sleep(0.01)
    assert producer.metrics().batches_sent == 1
    started = time.monotonic()
    assert await asyncio.gather(*handles) == [SendAck(2, 1, i) for i in range(3)]
    assert time.monotonic() - started < 5.0  # sealed when batch 1 was acked, not at linger
    assert producer.metrics().batches_sent == 2


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_a_lingered_batch_waits_for_a_window_slot_and_keeps_gathering(
    server: LanceServer, connect: Callable[..., Awaitable[Producer]]
) -> None:
    producer = await connect(cfg(linger_ms=5, max_pending_acks=1))
    server.faults = FaultConfig(ack_delay_ms=150)
    await producer.send_async(1, rec(0))
    await asyncio.sleep(0)
    await producer.send_async(1, rec(1))
    await asyncio.sleep(0.05)  # batch 2's linger expired while the window was full
    assert await producer.send_async(1, rec(2)) == 2  # so it still takes records
    assert producer.metrics().batches_sent == 1
    await producer.flush()
    m = producer.metrics()
    assert (m.batches_sent, m.records_acked) == (2, 3)
    assert await values_of(server.address, 1) == [rec(i) for i in range(3)]


async def test_topics_batch_separately(
    server: LanceServer, connect: Callable[..., Awaitable[Producer]]
) -> None:
    producer = await connect(cfg(linger_ms=10_000))
    ids = [await producer.send_async(1 + i % 2, rec(i)) for i in range(10)]
    assert ids == [1, 2] * 5
    await producer.flush()
    assert await values_of(server.address, 1) == [rec(i) for i in range(0, 10, 2)]
    assert await values_of(server.address, 2) == [rec(i) for i in range(1, 10, 2)]


async def test_send_does_not_linger_but_shares_the_iteration(
    connect: Callable[..., Awaitable[Producer]],
) -> None:
    producer = await connect(cfg(linger_ms=60_000))
    started = time.monotonic()
    ids = await asyncio.gather(*(producer.send(1, rec(i)) for i in range(20)))
    assert time.monotonic() - started < 1.0
    assert ids == [1] * 20
    assert producer.metrics().batches_acked == 1


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_in_flight_window_is_bounded(
    server: LanceServer, connect: Callable[..., Awaitable[Producer]]
) -> None:
    server.faults = FaultConfig(ack_delay_ms=30)
    producer = await connect(cfg(max_pending_acks=2))
    ids = [await producer.send_batch_async(1, [rec(i)]) for i in range(8)]
    m = producer.metrics()
    assert (m.in_flight_batches, m.queued_batches) == (2, 6)
    await producer.flush()
    assert ids == list(range(1, 9))
    m = producer.metrics()
    assert (m.in_flight_batches, m.queued_batches, m.batches_acked, m.retries) == (0, 0, 8, 0)
    assert await values_of(server.address, 1) == [rec(i) for i in range(8)]


async def test_send_batch_values_and_typed_records(
    server: LanceServer, connect: Callable[..., Awaitable[Producer]]
) -> None:
    producer = await connect()
    first = await producer.send_batch(1, [b"a", b"bb"], record_type=RecordType.JSON)
    typed = [TlvRecord.key_value("k", b"v"), TlvRecord.null(), TlvRecord.raw(b"r")]
    second = await producer.send_batch(topic_id=1, records=typed)
    assert (first, second) == (1, 2)
    stored = await read_back(server.address, 1)
    assert stored == [TlvRecord(RecordType.JSON, b"a"), TlvRecord(RecordType.JSON, b"bb"), *typed]
    with pytest.raises(ValueError, match="at least one"):
        await producer.send_batch(1, [])
    with pytest.raises(TypeError, match="all bytes or all TlvRecord"):
        await producer.send_batch(1, [TlvRecord.raw(b"x"), b"y"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="record_type"):
        await producer.send_async(1, b"x", record_type=0xFF)


def test_oversized_batches_split_into_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accumulator, "MAX_PAYLOAD_SIZE", 100)
    chunks = accumulator.encode_chunks([rec(i) for i in range(9)], 1)
    assert [count for count, _ in chunks] == [4, 4, 1]
    assert b"".join(payload for _, payload in chunks) == encode_values([rec(i) for i in range(9)])
    with pytest.raises(ValueError, match="frame limit"):
        accumulator.encode_chunks([b"x" * 200], 1)


async def test_record_and_topic_limits(connect: Callable[..., Awaitable[Producer]]) -> None:
    producer = await connect()
    with pytest.raises(ValueError, match="frame limit"):
        await producer.send_async(1, b"x" * (16 * 1024 * 1024))
    with pytest.raises(ValueError, match="topic id"):
        await producer.send_async(2**32, b"x")
    with pytest.raises(ValueError, match="topic"):
        await producer.send_async(None, b"x")


# --- memory and handles ---------------------------------------------------------------------------


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_full_buffer_blocks_then_raises(
    server: LanceServer, connect: Callable[..., Awaitable[Producer]]
) -> None:
    server.faults = FaultConfig(ack_delay_ms=300)
    producer = await connect(cfg(batch_size=100, buffer_memory=100, max_block_s=0.05))
    await producer.send_async(1, b"x" * 95)
    started = time.monotonic()
    with pytest.raises(BackpressureError, match="stayed full"):
        await producer.send_async(1, b"y")
    assert 0.04 <= time.monotonic() - started < 0.25
    with pytest.raises(BackpressureError, match="is full"):
        producer.send_nowait(1, b"y")
    server.faults = FaultConfig()
    await producer.flush()


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_blocked_send_resumes_on_ack(
    server: LanceServer, connect: Callable[..., Awaitable[Producer]]
) -> None:
    server.faults = FaultConfig(ack_delay_ms=50)
    producer = await connect(cfg(batch_size=100, buffer_memory=100, max_block_s=2.0))
    started = time.monotonic()
    for i in range(4):
        await producer.send_async(1, rec(i, 95))
    await producer.flush()
    assert time.monotonic() - started >= 0.15
    assert await values_of(server.address, 1) == [rec(i, 95) for i in range(4)]


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_a_due_batch_fails_at_its_delivery_timeout(
    server: LanceServer, connect: Callable[..., Awaitable[Producer]]
) -> None:
    server.faults = FaultConfig(ack_delay_ms=700)
    producer = await connect(cfg(max_pending_acks=1, delivery_timeout_s=0.3))
    await producer.send_async(1, rec(0))  # batch 1 fills the window for 700 ms
    await asyncio.sleep(0)
    handle = await producer.send_handle(1, rec(1))  # batch 2 lingers, then waits as due
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"batch 2 was not acknowledged within 0\.3 s"):
        await handle
    assert time.monotonic() - started < 0.6  # failed by housekeeping, before batch 1's Ack
    server.faults = FaultConfig()
    with pytest.raises(TimeoutError):
        await producer.flush()


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_a_full_buffer_does_not_seal_open_batches_while_acks_are_on_their_way(
    server: LanceServer, connect: Callable[..., Awaitable[Producer]]
) -> None:
    server.faults = FaultConfig(ack_delay_ms=200)
    config = cfg(batch_size=100, buffer_memory=200, max_block_s=2.0, linger_ms=60_000)
    producer = await connect(config)
    await producer.send_async(1, rec(0, 95))  # a full batch: in flight, acked after 200 ms
    await producer.send_async(2, rec(1, 20))
    await producer.send_async(2, rec(2, 20))
    blocked = asyncio.create_task(producer.send_async(2, rec(3, 60)))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    assert producer.metrics().batches_sent == 1  # topic 2's open batch was not sealed early
    # batch 1's Ack freed the room and sent topic 2's two records (Nagle): this one opens batch 3
    assert await blocked == 3
    server.faults = FaultConfig()
    await producer.flush()
    assert await values_of(server.address, 2) == [rec(1, 20), rec(2, 20), rec(3, 60)]


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_raise_policy(
    server: LanceServer, connect: Callable[..., Awaitable[Producer]]
) -> None:
    server.faults = FaultConfig(ack_delay_ms=200)
    producer = await connect(
        cfg(batch_size=100, buffer_memory=100, buffer_full=BufferFullPolicy.RAISE)
    )
    await producer.send_async(1, b"x" * 95)
    started = time.monotonic()
    with pytest.raises(BackpressureError, match="is full"):
        await producer.send_async(1, b"y")
    assert time.monotonic() - started < 0.05
    server.faults = FaultConfig()


async def test_callbacks_get_each_record(connect: Callable[..., Awaitable[Producer]]) -> None:
    producer = await connect(cfg(linger_ms=10_000))
    seen: list[tuple[SendAck | None, LanceError | None]] = []
    for i in range(3):
        producer.send_nowait(1, rec(i), callback=lambda ack, err: seen.append((ack, err)))
    producer.send_nowait(99, b"lost", callback=lambda ack, err: seen.append((ack, err)))
    with pytest.raises(TopicNotFoundError):
        await producer.flush()
    assert seen[:3] == [(SendAck(1, 1, i), None) for i in range(3)]
    ack, error = seen[3]
    assert ack is None
    assert isinstance(error, TopicNotFoundError)
    assert error.server_text == "Unknown topic"


async def test_failing_callback_does_not_stop_others(
    connect: Callable[..., Awaitable[Producer]],
) -> None:
    producer = await connect(cfg(linger_ms=10_000))
    loop = asyncio.get_running_loop()
    reported: list[object] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))
    seen: list[SendAck | None] = []

    def broken(ack: SendAck | None, error: LanceError | None) -> None:
        raise RuntimeError("boom")

    producer.send_nowait(1, b"a", callback=broken)
    producer.send_nowait(1, b"b", callback=lambda ack, err: seen.append(ack))
    await producer.flush()
    loop.set_exception_handler(None)
    assert seen == [SendAck(1, 1, 1)]
    assert [str(e) for e in reported] == ["boom"]


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_handle_api(server: LanceServer, connect: Callable[..., Awaitable[Producer]]) -> None:
    producer = await connect(cfg(linger_ms=10_000))
    server.faults = FaultConfig(ack_delay_ms=100)
    handle = await producer.send_handle(1, b"a")
    bad = await producer.send_handle(99, b"b")
    assert (handle.batch_id, handle.topic_id, handle.offset_in_batch) == (1, 1, 0)
    assert not handle.done()
    with pytest.raises(asyncio.InvalidStateError):
        handle.result()
    with pytest.raises(TimeoutError):
        await handle.wait(timeout=0.01)
    with pytest.raises(TopicNotFoundError):
        await producer.flush()
    assert handle.done()
    assert handle.exception() is None
    assert handle.result() == await handle == SendAck(1, 1, 0)
    assert isinstance(bad.exception(), TopicNotFoundError)
    with pytest.raises(TopicNotFoundError):
        await bad


# --- errors among acks, compression, auth ---------------------------------------------------------


@pytest.mark.parametrize("window", [1, 8])
async def test_error_frame_among_acks_fails_exactly_its_batch(
    server: LanceServer, connect: Callable[..., Awaitable[Producer]], window: int
) -> None:
    producer = await connect(cfg(max_pending_acks=window))
    good: list[int] = []
    for i in range(30):
        if i % 5 == 2:
            await producer.send_batch_async(77, [rec(i)])
        else:
            await producer.send_batch_async(1, [rec(i)])
            good.append(i)
    with pytest.raises(TopicNotFoundError) as caught:
        await producer.flush()
    assert caught.value.server_text == "Unknown topic"
    assert "6 batch(es) failed; batch 3 failed first" in caught.value.__notes__
    m = producer.metrics()
    assert (m.batches_acked, m.batches_failed, m.retries) == (24, 6, 0)
    assert await values_of(server.address, 1) == [rec(i) for i in good]
    await producer.flush()  # failures are reported once


async def test_send_raises_server_error_with_text(
    connect: Callable[..., Awaitable[Producer]],
) -> None:
    producer = await connect()
    with pytest.raises(TopicNotFoundError) as caught:
        await producer.send(5, b"x")
    assert caught.value.server_text == "Unknown topic"
    assert await producer.send(1, b"fine") == 2


async def test_unknown_topic_drops_the_cached_name(
    server: LanceServer, connect: Callable[..., Awaitable[Producer]]
) -> None:
    producer = await connect()
    await producer.send("two", b"x")
    async with admin_for(server.address) as admin:
        await admin.delete_topic(2)
        await admin.create_topic("two")
    await producer.send("two", b"stale")  # re-resolved to the new topic (issue 9.10), not lost
    await producer.send("two", b"fresh")
    assert await values_of(server.address, 3) == [b"stale", b"fresh"]
    assert await producer.resolve_topic("two") == 3


async def test_compression_round_trip(
    server: LanceServer, connect: Callable[..., Awaitable[Producer]]
) -> None:
    producer = await connect(cfg(compression=True, linger_ms=10_000))
    values = [b'{"price": 6942.25, "n": %d}' % i for i in range(200)]
    for value in values:
        await producer.send_async(1, value)
    noise = os.urandom(300)
    await producer.send_batch(1, [noise])
    await producer.flush()
    async with admin_for(server.address) as admin:
        raw = bytes((await admin.fetch(1, 0, 1 << 20)).data)
    outer, used = decode_stream(raw, decompress=False)
    assert used == len(raw)
    assert [r.record_type for r in outer] == [RecordType.LNC_COMPRESSED, RecordType.RAW_DATA]
    assert len(raw) < len(encode_values(values)) // 2
    assert await values_of(server.address, 1) == [*values, noise]
    m = producer.metrics()
    assert m.bytes_sent == len(raw)


@pytest.mark.ours_only("starts lnc serve with auth tokens")
async def test_auth_token(tmp_path: Path) -> None:
    async with LanceServer(tmp_path / "d", port=0, auth_tokens=["s3cret"]) as srv:
        async with admin_for(srv.address, "s3cret") as admin:
            await admin.create_topic("t")
        anonymous = await Producer.connect(srv.address, cfg())
        with pytest.raises(AccessDeniedError) as caught:
            await anonymous.send(1, b"x")
        assert caught.value.server_text == "Authentication required"
        await anonymous.close()
        async with Producer(srv.address, cfg(auth_token="s3cret")) as producer:
            assert await producer.send(1, b"ok") == 1
        records = await read_back(srv.address, 1, auth_token="s3cret")
        assert [r.value for r in records] == [b"ok"]


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_backpressure_frames_slow_the_producer(
    server: LanceServer, connect: Callable[..., Awaitable[Producer]]
) -> None:
    server.faults = FaultConfig(backpressure_every_n_acks=1)
    producer = await connect(cfg(max_pending_acks=1))
    started = time.monotonic()
    for i in range(10):
        await producer.send_batch_async(1, [rec(i)])
    await producer.flush()
    elapsed = time.monotonic() - started
    m = producer.metrics()
    assert (m.backpressure_frames, m.batches_acked) == (10, 10)
    # Every ack is followed by a Backpressure frame; a batch sent after one waits 5 ms (the
    # batch sent by the ack itself goes before the frame is read): at least 4 holds here.
    assert elapsed >= 4 * 0.005
    assert await values_of(server.address, 1) == [rec(i) for i in range(10)]


# --- close, metrics -------------------------------------------------------------------------------


async def test_close_drains_lingering_batches(server: LanceServer) -> None:
    producer = await Producer.connect(server.address, cfg(linger_ms=60_000))
    for i in range(5):
        await producer.send_async(1, rec(i))
    await producer.close()
    await producer.close()
    assert await values_of(server.address, 1) == [rec(i) for i in range(5)]


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_close_is_bounded_and_fails_the_rest(server: LanceServer) -> None:
    server.faults = FaultConfig(ack_delay_ms=300)
    producer = await Producer.connect(server.address, cfg())
    handle = await producer.send_handle(1, b"slow")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await producer.close(timeout=0.1)
    assert time.monotonic() - started < 0.5
    assert isinstance(handle.exception(), ConnectionError)
    server.faults = FaultConfig()


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_a_second_close_waits_for_the_first(server: LanceServer) -> None:
    server.faults = FaultConfig(ack_delay_ms=150)
    producer = await Producer.connect(server.address, cfg())
    await producer.send_async(1, b"slow")
    first = asyncio.create_task(producer.close())
    await asyncio.sleep(0)  # the first close is draining
    assert producer.closed
    await producer.close()
    assert producer.metrics().records_acked == 1
    await first
    server.faults = FaultConfig()


async def test_flush_does_not_change_the_error_its_waiters_get(
    connect: Callable[..., Awaitable[Producer]],
) -> None:
    producer = await connect()
    waiter = asyncio.create_task(producer.send(99, b"also nowhere"))
    handle = await producer.send_handle(99, b"nowhere")
    await asyncio.sleep(0)  # both records wait for batch 1, which is sent now
    assert handle.batch_id == 1
    with pytest.raises(TopicNotFoundError) as flushed:
        await producer.flush()
    assert flushed.value.__notes__ == ["1 batch(es) failed; batch 1 failed first"]
    with pytest.raises(TopicNotFoundError) as awaited:
        await handle
    with pytest.raises(TopicNotFoundError) as sent:
        await waiter
    errors = [handle.exception(), awaited.value, sent.value]
    for error in errors:
        assert isinstance(error, TopicNotFoundError)
        assert error is not flushed.value
        assert error.server_text == "Unknown topic"
        assert not hasattr(error, "__notes__")
    assert awaited.value is not sent.value  # each waiter raises its own copy


# --- faults: a proxy that cuts frames and stops reading -------------------------------------------


class FaultProxy:
    """Forwards 127.0.0.1 connections to a server, with client-to-server faults.

    Attributes:
        paused: While set, nothing is read from clients (the peer "stops reading").
        cut_after: When > 0, forward only this many more client bytes, then reset the connection
            (so a frame is cut in the middle); it applies once.
    """

    def __init__(self, target: str) -> None:
        self._target = parse_address(target)
        self._listener: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._transports: set[asyncio.WriteTransport] = set()
        self.running = asyncio.Event()
        self.running.set()
        self.cut_after = 0

    @property
    def address(self) -> str:
        assert self._listener is not None
        return f"127.0.0.1:{self._listener.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> FaultProxy:
        self._listener = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._listener is not None
        self._listener.close()
        for transport in list(self._transports):
            transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._listener.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(self._target.host, self._target.port)
        pair = {client_w.transport, server_w.transport}
        self._transports |= pair
        upstream = asyncio.ensure_future(self._upstream(client_r, server_w, pair))
        downstream = asyncio.ensure_future(self._copy(server_r, client_w))
        self._tasks |= {upstream, downstream}
        await asyncio.wait([upstream, downstream], return_when=asyncio.FIRST_COMPLETED)
        for transport in pair:
            transport.abort()
        for task in (upstream, downstream):
            task.cancel()
        await asyncio.gather(upstream, downstream, return_exceptions=True)
        self._tasks -= {upstream, downstream}
        self._transports -= pair

    async def _upstream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pair: set[asyncio.WriteTransport],
    ) -> None:
        while True:
            chunk = await reader.read(65536)
            await self.running.wait()
            if not chunk:
                return
            if self.cut_after and len(chunk) >= self.cut_after:
                writer.write(chunk[: self.cut_after])
                await writer.drain()
                self.cut_after = 0
                await asyncio.sleep(0.05)  # let the partial frame reach the server
                for transport in pair:
                    transport.abort()
                return
            if self.cut_after:
                self.cut_after -= len(chunk)
            writer.write(chunk)

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            writer.write(chunk)


async def test_connection_cut_in_the_middle_of_a_frame(server: LanceServer) -> None:
    async with FaultProxy(server.address) as proxy:
        producer = await Producer.connect(proxy.address, cfg(max_pending_acks=1))
        # Stop-and-wait: frame 2 is sent only after ack 1 arrived; cut frame 2 in its middle.
        frame_size = 44 + 1000 * 25
        proxy.cut_after = frame_size + frame_size // 2
        records = [rec(i) for i in range(3000)]
        for start in range(0, 3000, 1000):
            await producer.send_batch_async(1, records[start : start + 1000])
        await producer.flush()
        m = producer.metrics()
        await producer.close()
    assert (m.reconnects, m.retries, m.batches_acked) == (1, 1, 3)
    # Nothing was stored twice: the cut frame never reached the server whole.
    assert await values_of(server.address, 1) == records


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_server_drops_connections_resend_keeps_batch_ids(server: LanceServer) -> None:
    server.faults = FaultConfig(drop_after_frames=3)
    producer = await Producer.connect(server.address, cfg(max_pending_acks=1))
    ids = [await producer.send_batch_async(1, [rec(i)]) for i in range(9)]
    await producer.flush()
    m = producer.metrics()
    await producer.close()
    server.faults = FaultConfig()
    assert ids == list(range(1, 10))
    # Each connection takes 2 frames; the 3rd is dropped unprocessed and resent (same id). A
    # batch resent after such a hang-up is preceded by a ping on the new connection (issue 9.6),
    # which is one of its 2 frames: from the second connection on, one batch each.
    assert (m.batches_acked, m.reconnects, m.retries) == (9, 7, 7)
    assert await values_of(server.address, 1) == [rec(i) for i in range(9)]


async def test_server_restart_under_load(server: LanceServer) -> None:
    producer = await Producer.connect(server.address, cfg(max_pending_acks=4, batch_size=2000))
    acked: list[bytes] = []

    def on_ack(value: bytes) -> Callable[[SendAck | None, LanceError | None], None]:
        return lambda ack, error: acked.append(value) if error is None else None

    async def load() -> None:
        for i in range(4000):
            producer.send_nowait(1, rec(i), callback=on_ack(rec(i)))
            if i % 50 == 0:
                await asyncio.sleep(0.001)

    task = asyncio.create_task(load())
    # Some acked and the load still sending: the restart hits batches in flight or about to
    # be sent. (Asking for in-flight batches at a sampled instant races with fast acks.)
    await wait_for(lambda: acked and not task.done())
    await server.restart()
    await task
    await producer.flush()
    m = producer.metrics()
    await producer.close()
    assert m.reconnects >= 1
    assert len(acked) == 4000
    stored = await values_of(server.address, 1)
    assert_at_least_once_in_order(stored, acked)
    assert len(stored) - 4000 <= m.retries * 100  # duplicates come only from resent batches


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_slow_acks_within_the_timeout(server: LanceServer) -> None:
    server.faults = FaultConfig(ack_delay_ms=40)
    async with Producer(server.address, cfg(max_pending_acks=3, request_timeout_s=1.0)) as p:
        started = time.monotonic()
        for i in range(12):
            await p.send_batch_async(1, [rec(i)])
        await p.flush()
        m = p.metrics()
    assert time.monotonic() - started >= 0.12
    assert (m.batches_acked, m.retries, m.reconnects) == (12, 0, 0)
    assert await values_of(server.address, 1) == [rec(i) for i in range(12)]


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_acks_slower_than_the_timeout_reset_and_resend(server: LanceServer) -> None:
    server.faults = FaultConfig(ack_delay_ms=400)
    producer = await Producer.connect(server.address, cfg(request_timeout_s=0.1))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await producer.send(1, rec(0), timeout=0.2)
    assert time.monotonic() - started < 0.35
    server.faults = FaultConfig()
    await producer.flush(timeout=2.0)
    m = producer.metrics()
    await producer.close()
    assert m.retries >= 1
    assert m.reconnects >= 1
    stored = await values_of(server.address, 1)
    # The first copy was durable before its (late) ack: the resend is a documented duplicate.
    assert stored[0] == rec(0)
    assert set(stored) == {rec(0)}


async def test_peer_that_stops_reading(server: LanceServer) -> None:
    async with FaultProxy(server.address) as proxy:
        producer = await Producer.connect(
            proxy.address, cfg(request_timeout_s=0.2, delivery_timeout_s=5.0)
        )
        await producer.send(1, rec(0))
        proxy.running.clear()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await producer.send(1, rec(1), timeout=0.3)
        assert time.monotonic() - started < 0.45
        for i in range(2, 50):
            await producer.send_async(1, rec(i))
        with pytest.raises(TimeoutError):
            await producer.flush(timeout=0.2)
        proxy.running.set()
        await producer.flush(timeout=3.0)
        m = producer.metrics()
        await producer.close()
    assert m.reconnects >= 1
    stored = await values_of(server.address, 1)
    assert_at_least_once_in_order(stored, [rec(i) for i in range(50)])


async def test_delivery_timeout_when_the_server_is_gone(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "d")
    await srv.start()
    producer = await Producer.connect(
        srv.address, cfg(delivery_timeout_s=0.3, request_timeout_s=0.2)
    )
    await srv.stop()
    handle = await producer.send_handle(1, b"never")
    await producer.send_async(2, b"unwatched")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"batch 1 was not acknowledged within 0\.3 s"):
        await handle
    assert time.monotonic() - started < 0.6
    with pytest.raises(TimeoutError, match=r"batch 2 was not acknowledged within 0\.3 s"):
        await producer.flush()
    await producer.close()


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_no_auto_reconnect_fails_instead(server: LanceServer) -> None:
    server.faults = FaultConfig(drop_after_frames=2)
    producer = await Producer.connect(server.address, cfg(auto_reconnect=False))
    assert await producer.send(1, b"first") == 1
    with pytest.raises(ConnectionError):
        await producer.send(1, b"dropped")
    server.faults = FaultConfig()
    with pytest.raises(ConnectionError):
        await producer.send(1, b"after")
    assert producer.metrics().retries == 0
    await producer.close()
    assert await values_of(server.address, 1) == [b"first"]
