"""What a send takes (issue 9, items 1 and 10): refused values leave no trace; topic ids checked.

* A value that is not bytes-like (a `str`, an `int`, a list, ...) is refused with `TypeError` by
  every append path, and the open batch stays exactly as it was: same batch, same bytes, same
  count, so the stored stream holds only the good records and a consumer ends with lag 0.
* Any other bytes-like value (a `memoryview` of ints, a non-contiguous view) is stored as its
  bytes, with a header that counts bytes, not items.
* `topic_id=0` is refused before anything is sent; the first send by name after the topic was
  deleted and created again under that name goes to the new topic and loses nothing.
"""

from __future__ import annotations

import array
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from lnc_client.admin import LanceClient
from lnc_client.config import ClientConfig, ProducerConfig, ReconnectConfig, parse_address
from lnc_client.errors import TopicNotFoundError
from lnc_client.producer import Producer
from lnc_client.protocol.records import RecordType, TlvRecord, decode_stream

from .conftest import ServerUnderTest, start_server

FAST = ReconnectConfig(base_delay_ms=5, max_delay_ms=50, jitter_factor=0.0)
CONFIG = ProducerConfig(
    linger_ms=10_000, connect_timeout_s=2.0, request_timeout_s=2.0, delivery_timeout_s=5.0
)
WRONG_VALUES: list[object] = [
    "text",
    "",
    7,
    None,
    1.5,
    True,
    [1, 2, 3],
    (1, 2),
    {1: 2},
    {"k"},
    object(),
    iter([b"x"]),
]


def admin_for(server: ServerUnderTest) -> LanceClient:
    address = parse_address(server.address)
    return LanceClient(ClientConfig(host=address.host, port=address.port, reconnect=FAST))


async def stored(server: ServerUnderTest, topic: int) -> list[TlvRecord]:
    async with admin_for(server) as admin:
        end = await admin.end_offset(topic)
        window = await admin.fetch(topic, 0, max(end, 1))
    records, used = decode_stream(window.data)
    assert used == end == len(window.data)
    return records


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerUnderTest]:
    async with start_server(tmp_path / "data") as running:
        async with admin_for(running) as admin:
            await admin.create_topic("values")
        yield running


@pytest.fixture
async def producer(server: ServerUnderTest) -> AsyncIterator[Producer]:
    async with Producer(server.address, CONFIG) as running:
        yield running


def open_batch(producer: Producer, topic: int) -> tuple[int, bytes, int] | None:
    batch = producer._accumulator.open.get(topic)
    return None if batch is None else (batch.batch_id, bytes(batch.buffer), batch.count)


SendPath = Callable[[Producer, object], Awaitable[object]]


async def by_send_async(producer: Producer, value: object) -> object:
    return await producer.send_async(1, value)  # type: ignore[arg-type]


async def by_send_nowait(producer: Producer, value: object) -> object:
    return producer.send_nowait(1, value)  # type: ignore[arg-type]


async def by_send_handle(producer: Producer, value: object) -> object:
    return await producer.send_handle(1, value)  # type: ignore[arg-type]


async def by_send(producer: Producer, value: object) -> object:
    return await producer.send(1, value, timeout=5.0)  # type: ignore[arg-type]


async def by_send_batch(producer: Producer, value: object) -> object:
    return await producer.send_batch(1, [b"first", value], timeout=5.0)  # type: ignore[list-item]


PATHS = [by_send_async, by_send_nowait, by_send_handle, by_send]


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.__name__)
async def test_a_refused_value_leaves_the_batch_exactly_as_it_was(
    server: ServerUnderTest, producer: Producer, path: SendPath
) -> None:
    for value in WRONG_VALUES:
        before = open_batch(producer, 1)
        with pytest.raises(TypeError, match="bytes-like"):
            await path(producer, value)
        assert open_batch(producer, 1) == before, value
        assert producer.metrics().buffered_bytes == (0 if before is None else len(before[1]))
        await producer.send_async(1, b"good")
    await producer.flush()
    assert [r.value for r in await stored(server, 1)] == [b"good"] * len(WRONG_VALUES)
    assert producer.metrics().records_acked == len(WRONG_VALUES)


@pytest.mark.parametrize("record_type", [0xFF, -1, 0x100, "1", 1.5, None])
async def test_a_refused_record_type_leaves_an_open_batch_exactly_as_it_was(
    server: ServerUnderTest, producer: Producer, record_type: object
) -> None:
    await producer.send_async(1, b"open")  # the next sends take the fast path
    before = open_batch(producer, 1)
    with pytest.raises(ValueError, match="record_type"):
        await producer.send_async(1, b"bad", record_type=record_type)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="record_type"):
        producer.send_nowait(1, b"bad", record_type=record_type)  # type: ignore[arg-type]
    assert open_batch(producer, 1) == before
    assert producer.metrics().buffered_bytes == len(b"open") + 5
    await producer.send_async(1, b"after")
    await producer.flush()
    assert [r.value for r in await stored(server, 1)] == [b"open", b"after"]


async def test_records_of_changing_type_and_length_in_one_batch_keep_their_headers(
    server: ServerUnderTest, producer: Producer
) -> None:
    sent = [
        TlvRecord(record_type, value)
        for value in (b"", b"a", b"bb", b"a", b"x" * 300, b"a")
        for record_type in (RecordType.RAW_DATA, RecordType.JSON, RecordType.RAW_DATA)
    ]
    for number, record in enumerate(sent):
        if number % 2:
            await producer.send_async(1, record.value, record_type=record.record_type)
        else:
            producer.send_nowait(1, record.value, record_type=record.record_type)
    assert producer.metrics().batches_sent == 0  # all in one open batch
    await producer.flush()
    assert await stored(server, 1) == sent


async def test_a_topic_that_only_equals_an_open_topic_id_is_not_taken_for_it(
    server: ServerUnderTest, producer: Producer
) -> None:
    await producer.send_async(1, b"open")
    before = open_batch(producer, 1)
    for topic in (True, 1.0):
        with pytest.raises((TypeError, ValueError)):
            await producer.send_async(topic, b"x")  # type: ignore[arg-type]
        with pytest.raises((TypeError, ValueError)):
            producer.send_nowait(topic, b"x")  # type: ignore[arg-type]
    assert open_batch(producer, 1) == before


async def test_send_batch_refuses_a_wrong_value_before_anything_is_queued(
    server: ServerUnderTest, producer: Producer
) -> None:
    await producer.send_async(1, b"open")
    before = open_batch(producer, 1)
    for value in WRONG_VALUES:
        with pytest.raises(TypeError, match="bytes-like"):
            await by_send_batch(producer, value)
        assert open_batch(producer, 1) == before
    await producer.flush()
    assert [r.value for r in await stored(server, 1)] == [b"open"]


@pytest.mark.parametrize("path", [*PATHS, by_send_batch], ids=lambda path: path.__name__)
async def test_other_bytes_like_values_are_stored_as_their_bytes(
    server: ServerUnderTest, producer: Producer, path: SendPath
) -> None:
    ints = array.array("i", [1, 2, 3])
    values: list[object] = [
        bytearray(b"ba"),
        memoryview(b"view"),
        memoryview(ints),
        memoryview(b"s-t-r-i-d-e-d")[::2],
        memoryview(bytes(range(6))).cast("B", (2, 3)),
    ]
    for value in values:
        await path(producer, value)
    await producer.flush()
    expected = [b"ba", b"view", ints.tobytes(), b"strided", bytes(range(6))]
    if path is by_send_batch:
        expected = [value for pair in zip([b"first"] * 5, expected, strict=True) for value in pair]
    assert [r.value for r in await stored(server, 1)] == expected


async def test_topic_id_0_is_refused_before_anything_is_sent(
    server: ServerUnderTest, producer: Producer
) -> None:
    for send in (
        lambda: producer.send(topic_id=0, data=b"x"),
        lambda: producer.send(0, b"x"),
        lambda: producer.send_async(0, b"x"),
        lambda: producer.send_batch(0, [b"x"]),
    ):
        with pytest.raises(ValueError, match=r"topic id 0"):
            await send()
    with pytest.raises(ValueError, match=r"topic id 0"):
        producer.send_nowait(0, b"x")
    await producer.flush()
    metrics = producer.metrics()
    assert (metrics.batches_sent, metrics.buffered_bytes) == (0, 0)


async def test_the_first_send_after_a_topic_is_recreated_goes_to_the_new_topic(
    server: ServerUnderTest, producer: Producer
) -> None:
    assert await producer.resolve_topic("values") == 1
    await producer.send("values", b"before")
    async with admin_for(server) as admin:
        await admin.delete_topic(1)
        created = await admin.create_topic("values")
    if created.id == 1:
        pytest.skip("this server gave the re-created topic its old id: nothing to re-resolve")
    await producer.send("values", b"after", timeout=5.0)
    handle = await producer.send_handle("values", b"then")
    await producer.flush()
    assert handle.topic_id == created.id
    assert [r.value for r in await stored(server, created.id)] == [b"after", b"then"]
    assert producer.metrics().records_failed == 0


async def test_a_batch_for_a_deleted_topic_still_fails_when_no_topic_took_the_name(
    server: ServerUnderTest, producer: Producer
) -> None:
    await producer.resolve_topic("values")
    async with admin_for(server) as admin:
        await admin.delete_topic(1)
    with pytest.raises(TopicNotFoundError):
        await producer.send("values", b"lost", timeout=5.0)
    assert producer.metrics().records_failed == 1
