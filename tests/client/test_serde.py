"""Serializers (`lnc_client.serde`) and record helpers that take Python objects."""

from __future__ import annotations

import asyncio
import math

import pydantic
import pytest

from lnc_client import Producer, ProducerConfig, RecordType, StandaloneConsumer, TlvRecord
from lnc_client.protocol.control import TopicInfo
from lnc_client.serde import (
    JSON,
    BytesSerde,
    DeserializationError,
    DeserializingConsumer,
    JsonSerde,
    MsgpackSerde,
    PydanticSerde,
    StringSerde,
)
from lnc_client.server import ServerThread


class Trade(pydantic.BaseModel):
    symbol: str
    price: float


def test_record_helpers_take_python_objects() -> None:
    assert (
        TlvRecord.json({"price": 6942.25, "tag": "é"}).value
        == '{"price":6942.25,"tag":"é"}'.encode()
    )
    assert TlvRecord.json(b'{"already": "encoded"}').value == b'{"already": "encoded"}'
    assert TlvRecord.json([1, 2]).as_json() == [1, 2]
    assert TlvRecord.key_value("k", {"a": 1}).as_key_value() == ("k", b'{"a":1}')
    assert TlvRecord.key_value("k", b"raw").as_key_value() == ("k", b"raw")
    assert TlvRecord.timestamped(7, [True]).as_timestamped() == (7, b"[true]")
    assert TlvRecord.key_timestamped("k", 7, None).as_key_timestamped() == ("k", 7, b"null")
    assert TlvRecord.raw("text").value == b"text"
    with pytest.raises(ValueError, match="Out of range float"):
        TlvRecord.json(math.nan)  # not JSON: other readers would choke on it
    with pytest.raises(TypeError):
        TlvRecord.json(object())


@pytest.mark.parametrize(
    ("serde", "value"),
    [
        (JSON, {"nested": [1, "two", None, 3.5]}),
        (StringSerde(), "grüße"),
        (StringSerde("latin-1"), "grüße"),
        (BytesSerde(), b"\x00\xff"),
        (MsgpackSerde(), {"bin": b"\x00", "list": [1, 2]}),
        (PydanticSerde(Trade), Trade(symbol="ES", price=6942.25)),
    ],
)
def test_round_trips(serde: JsonSerde, value: object) -> None:
    data = serde.serialize(value)
    assert isinstance(data, bytes)
    assert serde.deserialize(data) == value


def test_pydantic_validates_on_the_way_in() -> None:
    with pytest.raises(pydantic.ValidationError):
        PydanticSerde(Trade).deserialize(b'{"symbol": "ES"}')


async def test_consumer_with_a_deserializer_yields_decoded_messages(
    lance_producer: Producer, lance_consumer: StandaloneConsumer, lance_topic: TopicInfo
) -> None:
    await lance_producer.send_batch(
        lance_topic.id,
        [
            TlvRecord.json({"n": 1}),
            TlvRecord.key_value("user-7", {"n": 2}),
            TlvRecord.key_timestamped("user-8", 123, {"n": 3}),
            TlvRecord.null(),
        ],
    )
    decoding = DeserializingConsumer(lance_consumer, JSON)
    messages = await decoding.poll(timeout=2)
    assert messages is not None
    assert [(m.key, m.value, m.timestamp_ns) for m in messages] == [
        (None, {"n": 1}, None),
        ("user-7", {"n": 2}, None),
        ("user-8", {"n": 3}, 123),
        (None, None, None),
    ]
    assert [m.offset for m in messages] == [0, 12, 32, 60]
    assert {(m.topic_id, m.topic_name) for m in messages} == {(lance_topic.id, lance_topic.name)}


async def test_a_message_loop_left_inside_a_batch_leaves_the_rest_uncommitted(
    lance_producer: Producer, lance_consumer: StandaloneConsumer, lance_topic: TopicInfo
) -> None:
    await lance_producer.send_batch(lance_topic.id, [TlvRecord.json({"n": n}) for n in range(3)])
    decoding = DeserializingConsumer(lance_consumer, JSON)
    async for message in decoding.messages(timeout=2):
        assert message.value == {"n": 0}
        break
    # The loop stopped on the first message, unprocessed: the next loop starts from it, and
    # closing commits nothing past it.
    seen = []
    async with asyncio.timeout(5):
        async for message in decoding.messages(timeout=2):
            seen.append(message.value)
            if len(seen) == 2:
                break
    assert seen == [{"n": 0}, {"n": 1}]
    await lance_consumer.close()
    # {"n": 0} was processed; {"n": 1}, where the loop broke, was not.
    assert lance_consumer.current_offset == TlvRecord.json({"n": 0}).total_size


async def test_a_decode_error_names_topic_and_offset(
    lance_producer: Producer, lance_consumer: StandaloneConsumer, lance_topic: TopicInfo
) -> None:
    await lance_producer.send_batch(lance_topic.id, [b'{"ok": 1}', b"not json"])
    decoding = DeserializingConsumer(lance_consumer, JSON)
    with pytest.raises(DeserializationError) as caught:
        await decoding.poll(timeout=2)
    error = caught.value
    assert (error.topic_id, error.topic_name, error.offset) == (
        lance_topic.id,
        lance_topic.name,
        14,
    )
    assert f"offset 14 of topic '{lance_topic.name}'" in str(error)
    assert isinstance(error.__cause__, ValueError)
    assert not error.retryable
    lance_consumer.seek(error.offset)
    again = await lance_consumer.poll(timeout=2)
    assert again is not None
    assert again.records[0].value == b"not json"


async def test_records_of_a_compressed_envelope_carry_the_envelope_offset(
    lance_server: ServerThread, lance_consumer: StandaloneConsumer, lance_topic: TopicInfo
) -> None:
    config = ProducerConfig(compression=True)
    async with Producer(lance_server.address, config) as producer:
        await producer.send_batch(lance_topic.id, [b'{"a": 1}'] * 200)
        await producer.send_batch(lance_topic.id, [b'{"b": 2}'] * 200)
    decoding = DeserializingConsumer(lance_consumer, JSON, key_deserializer=BytesSerde())
    messages = []
    async for message in decoding:
        messages.append(message)
        if len(messages) == 400:
            break
    assert {m.record.record_type for m in messages} == {RecordType.RAW_DATA}
    first, second = messages[0].offset, messages[200].offset
    assert first == 0
    assert second > 0
    assert {m.offset for m in messages[:200]} == {first}
    assert {m.offset for m in messages[200:]} == {second}
    assert [m.value for m in (messages[0], messages[399])] == [{"a": 1}, {"b": 2}]


def test_blocking_consumer_with_a_deserializer(
    lance_sync_producer: object, lance_sync_consumer: object, lance_topic: TopicInfo
) -> None:
    from lnc_client import sync

    assert isinstance(lance_sync_producer, sync.Producer)
    assert isinstance(lance_sync_consumer, sync.StandaloneConsumer)
    lance_sync_producer.send_batch(
        lance_topic.id, [TlvRecord.json({"n": 1}), TlvRecord.key_value("k", {"n": 2})]
    )
    decoding = sync.DeserializingConsumer(lance_sync_consumer, JSON)
    messages = []
    for message in decoding:
        messages.append((message.key, message.value))
        if len(messages) == 2:
            break
    assert messages == [(None, {"n": 1}), ("k", {"n": 2})]
    lance_sync_producer.send(lance_topic.id, b"{broken")
    with pytest.raises(DeserializationError, match=f"offset 27 of topic '{lance_topic.name}'"):
        decoding.poll(2)


async def test_serializing_producer_round_trips_keys_timestamps_and_types(
    lance_producer: Producer, lance_consumer: StandaloneConsumer, lance_topic: TopicInfo
) -> None:
    from lnc_client.serde import SerializingProducer

    producing = SerializingProducer(lance_producer, JSON)
    await producing.send(lance_topic.id, {"n": 1})
    await producing.send(lance_topic.name, {"n": 2}, key="user-7")
    await producing.send_async(lance_topic.id, {"n": 3}, timestamp_ns=5)
    await producing.send_batch(lance_topic.id, [{"n": 4}, None])
    await lance_producer.flush()
    packing = SerializingProducer(lance_producer, MsgpackSerde(), key_serializer=BytesSerde())
    messages = []
    decoding = DeserializingConsumer(lance_consumer, JSON)
    while len(messages) < 5:
        batch = await decoding.poll(timeout=2)
        assert batch is not None
        messages += batch
    assert [(m.key, m.value, m.timestamp_ns) for m in messages[:5]] == [
        (None, {"n": 1}, None),
        ("user-7", {"n": 2}, None),
        (None, {"n": 3}, 5),
        (None, {"n": 4}, None),
        (None, None, None),
    ]
    assert messages[0].record.record_type == RecordType.JSON
    packed = SerializingProducer(lance_producer, MsgpackSerde()).record({"n": 6})
    assert packed.record_type == RecordType.MSGPACK
    keyed = packing.record({"n": 6}, key=b"\x01", timestamp_ns=9)
    assert keyed.record_type == RecordType.KEY_TIMESTAMPED
