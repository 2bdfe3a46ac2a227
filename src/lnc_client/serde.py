"""Serializers: Python objects to record bytes and back, for values and keys.

The interface is two small protocols, so any object with the right method fits (a codec from
another library needs no adapter class, only a method named `serialize` or `deserialize`):

* `Serializer[T]`: `serialize(value: T) -> bytes`.
* `Deserializer[T]`: `deserialize(data: bytes) -> T`.

Built in: `BytesSerde` (as is), `StringSerde` (UTF-8 text) and `JsonSerde` (compact UTF-8
JSON). With the extras installed: `MsgpackSerde` (`pip install 'lnc-client[msgpack]'`) and
`PydanticSerde(Model)` (`pip install 'lnc-client[pydantic]'`). Each built-in is both a
serializer and a deserializer.

Data flow, producing: `SerializingProducer(producer, JSON)` wraps a `Producer`; its `send(topic,
obj, key=..., timestamp_ns=...)` serializes and sends one record (a KEY_VALUE, TIMESTAMPED or
KEY_TIMESTAMPED record when a key or a timestamp is given). `serde.serialize(obj)` alone gives
the bytes (`producer.send(topic, JSON.serialize(obj))`), and the record helpers of `TlvRecord`
accept Python objects directly and store them as JSON (`TlvRecord.json({...})`).

Consuming: `DeserializingConsumer(consumer, JSON)` wraps a `StandaloneConsumer`; its `poll()`
and `async for` give `Message`s whose `value` (and `key`) are decoded, and `decode_batch` does the
same for one `PollResult` (from the blocking consumer, for example). KEY_VALUE, TIMESTAMPED and
KEY_TIMESTAMPED records are split first: the key is decoded with the key deserializer (UTF-8
text by default), the timestamp is kept, and only the data goes to the value deserializer. A
NULL record (a tombstone) has the value None. A value that does not decode raises
`DeserializationError`, which names the topic and the record's offset; the consumer has moved
past that batch by then, so `seek(error.offset)` returns to it.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Generic, Protocol, Self, TypeVar, cast, overload

from lnc_client.consumer import PollResult, StandaloneConsumer
from lnc_client.errors import LanceError
from lnc_client.producer import Producer
from lnc_client.protocol.records import RecordType, TlvRecord, decode_stream, encode_json

__all__ = [
    "JSON",
    "BytesSerde",
    "DeserializationError",
    "Deserializer",
    "DeserializingConsumer",
    "JsonSerde",
    "Message",
    "MsgpackSerde",
    "PydanticSerde",
    "Serializer",
    "SerializingProducer",
    "StringSerde",
    "decode_batch",
]

T_contra = TypeVar("T_contra", contravariant=True)
T_co = TypeVar("T_co", covariant=True)
K = TypeVar("K")
V = TypeVar("V")


class Serializer(Protocol[T_contra]):
    """Turns a value into the bytes of a record.

    A serializer may also have a `record_type` attribute (an int, e.g. `RecordType.JSON`):
    `SerializingProducer` then gives its plain records that type (RAW_DATA otherwise).
    """

    def serialize(self, value: T_contra, /) -> bytes:
        """Return the bytes for `value`."""
        ...


class Deserializer(Protocol[T_co]):
    """Turns the bytes of a record back into a value."""

    def deserialize(self, data: bytes, /) -> T_co:
        """Return the value encoded in `data`; raise (any exception) if it is not one."""
        ...


class BytesSerde:
    """Bytes as they are (`bytearray` and `memoryview` are copied to `bytes`)."""

    record_type: int = RecordType.RAW_DATA

    def serialize(self, value: bytes | bytearray | memoryview, /) -> bytes:
        """Return `value` as `bytes`."""
        return bytes(value)

    def deserialize(self, data: bytes, /) -> bytes:
        """Return `data` as `bytes`."""
        return bytes(data)


class StringSerde:
    """Text in one encoding (UTF-8 by default); undecodable bytes are an error.

    Args:
        encoding: A codec name known to Python.
    """

    record_type: int = RecordType.RAW_DATA

    def __init__(self, encoding: str = "utf-8") -> None:
        self.encoding = encoding

    def serialize(self, value: str, /) -> bytes:
        """Return `value` encoded."""
        return value.encode(self.encoding)

    def deserialize(self, data: bytes, /) -> str:
        """Return `data` decoded."""
        return bytes(data).decode(self.encoding)


class JsonSerde:
    """Any JSON value: compact UTF-8 JSON out (no NaN or infinities), `json.loads` in."""

    record_type: int = RecordType.JSON

    def serialize(self, value: object, /) -> bytes:
        """Return `value` as compact UTF-8 JSON."""
        return encode_json(value)

    def deserialize(self, data: bytes, /) -> object:
        """Return the JSON value in `data`."""
        return json.loads(data)


JSON = JsonSerde()
"""A shared `JsonSerde` (it has no state)."""


def _import_extra(module: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{module} is not installed: pip install 'lnc-client[{extra}]'") from None


class MsgpackSerde:
    """MessagePack (the `msgpack` extra): any value msgpack can pack, raw bytes kept as bytes.

    Raises:
        ImportError: msgpack is not installed.
    """

    record_type: int = RecordType.MSGPACK

    def __init__(self) -> None:
        msgpack = _import_extra("msgpack", "msgpack")
        self._packb = cast(Callable[..., bytes], msgpack.packb)
        self._unpackb = cast(Callable[..., object], msgpack.unpackb)

    def serialize(self, value: object, /) -> bytes:
        """Return `value` packed."""
        return self._packb(value, use_bin_type=True)

    def deserialize(self, data: bytes, /) -> object:
        """Return the value packed in `data`."""
        return self._unpackb(data, raw=False)


class _PydanticModel(Protocol):
    """What `PydanticSerde` uses of a pydantic (v2) model class."""

    def model_dump_json(self) -> str: ...

    @classmethod
    def model_validate_json(cls, json_data: bytes, /) -> Self: ...


M = TypeVar("M", bound=_PydanticModel)


class PydanticSerde(Generic[M]):
    """Instances of one pydantic model as JSON (the `pydantic` extra), validated on the way in.

    Args:
        model: The pydantic `BaseModel` subclass.
    """

    record_type: int = RecordType.JSON

    def __init__(self, model: type[M]) -> None:
        _import_extra("pydantic", "pydantic")
        self.model = model

    def serialize(self, value: M, /) -> bytes:
        """Return the model instance as JSON."""
        return value.model_dump_json().encode()

    def deserialize(self, data: bytes, /) -> M:
        """Return a validated model instance (pydantic's `ValidationError` otherwise)."""
        return self.model.model_validate_json(bytes(data))


@dataclass(frozen=True, slots=True)
class Message(Generic[K, V]):
    """One decoded record.

    Attributes:
        topic_id: The topic's id.
        topic_name: The topic's name, when the consumer knows it.
        offset: The record's byte offset; for records that travelled in a compressed envelope,
            the envelope's offset (seek there to read the record again).
        key: The decoded key of a KEY_VALUE or KEY_TIMESTAMPED record, else None.
        value: The decoded value; None for a NULL record (a tombstone).
        timestamp_ns: The timestamp of a TIMESTAMPED or KEY_TIMESTAMPED record, else None.
        record: The record as received.
    """

    topic_id: int
    topic_name: str | None
    offset: int
    key: K | None
    value: V | None
    timestamp_ns: int | None
    record: TlvRecord


class DeserializationError(LanceError):
    """A record's key or value did not decode; the cause is chained (`__cause__`).

    Attributes:
        topic_id: The topic's id.
        topic_name: The topic's name, when known.
        offset: The record's byte offset (see `Message.offset`).
    """

    def __init__(self, topic_id: int, topic_name: str | None, offset: int, cause: Exception):
        topic = f"topic {topic_name!r} (id {topic_id})" if topic_name else f"topic id {topic_id}"
        super().__init__(f"cannot decode the record at offset {offset} of {topic}: {cause!r}")
        self.topic_id = topic_id
        self.topic_name = topic_name
        self.offset = offset


def _offsets(batch: PollResult) -> list[int]:
    """Each record's offset; the records of a compressed envelope get the envelope's offset."""
    offsets, position = [], batch.start_offset
    for record in batch.records:
        offsets.append(position)
        position += record.total_size
    if position == batch.end_offset:
        return offsets
    offsets, at = [], 0
    while len(offsets) < len(batch.records):
        members, used = decode_stream(batch.data[at:], max_records=1)
        if not used:
            break
        offsets += [batch.start_offset + at] * len(members)
        at += used
    return offsets + [batch.start_offset] * (len(batch.records) - len(offsets))


def decode_batch(
    batch: PollResult,
    value_deserializer: Deserializer[V],
    *,
    key_deserializer: Deserializer[K],
    topic_id: int,
    topic_name: str | None = None,
) -> list[Message[K, V]]:
    """Decode every record of one `PollResult` into a `Message`.

    Raises:
        DeserializationError: A key or value did not decode; it names the topic and offset.
    """
    messages: list[Message[K, V]] = []
    for record, offset in zip(batch.records, _offsets(batch), strict=True):
        try:
            messages.append(
                _decode(record, offset, value_deserializer, key_deserializer, topic_id, topic_name)
            )
        except Exception as error:
            raise DeserializationError(topic_id, topic_name, offset, error) from error
    return messages


def _decode(
    record: TlvRecord,
    offset: int,
    value_deserializer: Deserializer[V],
    key_deserializer: Deserializer[K],
    topic_id: int,
    topic_name: str | None,
) -> Message[K, V]:
    key: K | None = None
    timestamp: int | None = None
    data: bytes | None = record.value
    kind = record.record_type
    if kind == RecordType.KEY_VALUE:
        text, data = record.as_key_value()
        key = key_deserializer.deserialize(text.encode())
    elif kind == RecordType.TIMESTAMPED:
        timestamp, data = record.as_timestamped()
    elif kind == RecordType.KEY_TIMESTAMPED:
        text, timestamp, data = record.as_key_timestamped()
        key = key_deserializer.deserialize(text.encode())
    elif kind == RecordType.NULL:
        data = None
    value = None if data is None else value_deserializer.deserialize(data)
    return Message(topic_id, topic_name, offset, key, value, timestamp, record)


class DeserializingConsumer(Generic[K, V]):
    """A `StandaloneConsumer` that yields decoded `Message`s.

    `async for message in DeserializingConsumer(consumer, JSON): message.value`. Offsets,
    commits, seeks and closing stay on the wrapped consumer (`.consumer`).

    Args:
        consumer: A started (or to be started) `StandaloneConsumer`.
        value_deserializer: Decodes values.
        key_deserializer: Decodes keys; by default keys are UTF-8 text (`str`).
    """

    @overload
    def __init__(
        self: DeserializingConsumer[str, V],
        consumer: StandaloneConsumer,
        value_deserializer: Deserializer[V],
    ) -> None: ...

    @overload
    def __init__(
        self,
        consumer: StandaloneConsumer,
        value_deserializer: Deserializer[V],
        *,
        key_deserializer: Deserializer[K],
    ) -> None: ...

    def __init__(
        self,
        consumer: StandaloneConsumer,
        value_deserializer: Deserializer[V],
        *,
        key_deserializer: Deserializer[K] | None = None,
    ) -> None:
        self.consumer = consumer
        self._values = value_deserializer
        keys = StringSerde() if key_deserializer is None else key_deserializer
        self._keys = cast(Deserializer[K], keys)

    async def poll(self, timeout: float | None = None) -> list[Message[K, V]] | None:
        """`consumer.poll()`, decoded; None when nothing arrived in time.

        Raises:
            DeserializationError: A record did not decode (the consumer is past its batch).
        """
        batch = await self.consumer.poll(timeout)
        if batch is None:
            return None
        return self.decode(batch)

    def decode(self, batch: PollResult) -> list[Message[K, V]]:
        """Decode one `PollResult` of the wrapped consumer."""
        return decode_batch(
            batch,
            self._values,
            key_deserializer=self._keys,
            topic_id=self.consumer.topic_id,
            topic_name=self.consumer.topic_name,
        )

    async def messages(self, *, timeout: float | None = None) -> AsyncIterator[Message[K, V]]:
        """Yield every message, waiting as long as needed; ends when the consumer closes.

        As with `StandaloneConsumer.records()`, a message counts as processed when the loop asks
        for the next one: a loop that ends inside a batch leaves the rest of it uncommitted.
        """
        # The consumer's own record loop (package-internal): one step-back rule for both.
        loop = self.consumer._record_loop
        async for message in loop.mapped(self.consumer.batches(timeout=timeout), None, self.decode):
            yield message

    async def values(self, *, timeout: float | None = None) -> AsyncIterator[V | None]:
        """Yield every decoded value (None for a tombstone)."""
        async for message in self.messages(timeout=timeout):
            yield message.value

    def __aiter__(self) -> AsyncIterator[Message[K, V]]:
        return self.messages()


class SerializingProducer(Generic[K, V]):
    """A `Producer` that takes Python objects: values (and keys) go through serializers.

    Without a key or timestamp a record has the serializer's `record_type` (JSON for `JSON`,
    MSGPACK for `MsgpackSerde`, RAW_DATA otherwise); with a key it is a KEY_VALUE record, with a
    timestamp TIMESTAMPED, with both KEY_TIMESTAMPED: what `DeserializingConsumer` splits again.

    Args:
        producer: A connected (or to be started) `Producer`; flushing and closing stay on it.
        value_serializer: Encodes values.
        key_serializer: Encodes keys; by default keys are `str`, stored as UTF-8.
    """

    @overload
    def __init__(
        self: SerializingProducer[str, V], producer: Producer, value_serializer: Serializer[V]
    ) -> None: ...

    @overload
    def __init__(
        self,
        producer: Producer,
        value_serializer: Serializer[V],
        *,
        key_serializer: Serializer[K],
    ) -> None: ...

    def __init__(
        self,
        producer: Producer,
        value_serializer: Serializer[V],
        *,
        key_serializer: Serializer[K] | None = None,
    ) -> None:
        self.producer = producer
        self._values = value_serializer
        keys = StringSerde() if key_serializer is None else key_serializer
        self._keys = cast(Serializer[K], keys)
        self._value_type = int(getattr(value_serializer, "record_type", RecordType.RAW_DATA))

    def record(
        self, value: V, *, key: K | None = None, timestamp_ns: int | None = None
    ) -> TlvRecord:
        """The record `send` would send for these arguments."""
        data = self._values.serialize(value)
        encoded_key = None if key is None else self._keys.serialize(key)
        if encoded_key is not None and timestamp_ns is not None:
            return TlvRecord.key_timestamped(encoded_key, timestamp_ns, data)
        if encoded_key is not None:
            return TlvRecord.key_value(encoded_key, data)
        if timestamp_ns is not None:
            return TlvRecord.timestamped(timestamp_ns, data)
        return TlvRecord(self._value_type, data)

    async def send(
        self,
        topic: int | str,
        value: V,
        *,
        key: K | None = None,
        timestamp_ns: int | None = None,
        timeout: float | None = None,
    ) -> int:
        """Serialize and `Producer.send` one record (waits for the Ack); returns its batch id."""
        record = self.record(value, key=key, timestamp_ns=timestamp_ns)
        return await self.producer.send(
            topic, record.value, record_type=record.record_type, timeout=timeout
        )

    async def send_async(
        self, topic: int | str, value: V, *, key: K | None = None, timestamp_ns: int | None = None
    ) -> int:
        """Serialize and `Producer.send_async` one record (no wait); returns its batch id."""
        record = self.record(value, key=key, timestamp_ns=timestamp_ns)
        return await self.producer.send_async(topic, record.value, record_type=record.record_type)

    async def send_batch(
        self, topic: int | str, values: Iterable[V], *, timeout: float | None = None
    ) -> int:
        """Serialize values (no keys) and send them as one batch; returns its batch id."""
        records = [self.record(value) for value in values]
        return await self.producer.send_batch(topic, records, timeout=timeout)
