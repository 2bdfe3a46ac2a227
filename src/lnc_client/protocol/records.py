"""TLV records: the record stream inside ingest payloads and fetch windows.

Sans-I/O. The server stores payloads verbatim and never parses them (PROTOCOL.md §2.2), so the
record layer is entirely the clients' agreement, with one constraint from the server's crash
recovery (§2.9): after a crash it scans active segments as a chain of
`[type u8][length u32 LE][value]` records, where type **0xFF** announces an *extended* 7-byte
header `[0xFF][extended type u16 LE][length u32 LE]`, and cuts the file at the first record that
runs past its end. A stream that breaks this rule can lose acknowledged data after a crash.

Our choice for 0xFF: records of type `RecordType.NULL` (0xFF) are written and read in the
extended 7-byte form, exactly as recovery reads them. `TlvRecord.null()` therefore encodes as
`ff 0000 00000000`, never as the public spec's 5-byte `ff 00000000`, which recovery would misread
and cut. A reader written against the public spec (lnc-client 0.2.9) would misparse our nulls;
that is the price of never losing data, and `docs/protocol.md` says so.

Data flows like this:

* **Out:** `encode_values` (many values of one type, the producer's hot path), `encode_records`
  (typed `TlvRecord`s), or `TlvRecord.encode`. `compress_records` wraps an encoded stream into
  one record of type `RecordType.LNC_COMPRESSED` (LZ4 block, see `CompressionCodec`).
* **In:** `decode_stream(buffer)` returns the complete records at the start of the buffer and how
  many bytes they used; a fetch window that cuts a record in half leaves that record's bytes for
  the caller to carry into the next window (§5). Compressed envelopes are opened transparently.
"""

from __future__ import annotations

import json
import struct
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from itertools import chain
from typing import Final, cast, overload

import lz4.block

from lnc_client.errors import ProtocolError

__all__ = [
    "EXTENDED_HEADER_SIZE",
    "RECORD_HEADER_SIZE",
    "CompressionCodec",
    "RecordDialect",
    "RecordSequence",
    "RecordType",
    "RustRecordType",
    "TlvRecord",
    "as_record_value",
    "compress_records",
    "decode_records",
    "decode_stream",
    "decode_window",
    "encode_json",
    "encode_records",
    "encode_values",
    "pack_record_header",
    "record_header",
]

RECORD_HEADER_SIZE: Final = 5
EXTENDED_HEADER_SIZE: Final = 7
_MAX_VALUE: Final = 0xFFFFFFFF

_HEADER: Final = struct.Struct("<BI")
_EXTENDED: Final = struct.Struct("<BHI")
_KEY_LEN: Final = struct.Struct("<H")
_TIMESTAMP: Final = struct.Struct("<Q")
_KEY_TS: Final = struct.Struct("<HQ")
_ENVELOPE: Final = struct.Struct("<BI")
_LEADING_EMPTY: Final = (b"",)
_LZ4_MAX_RATIO: Final = 255
"""An LZ4 block expands at most ~255-fold, so a larger declared size is corrupt (and would
otherwise make the decoder allocate up to 4 GiB before failing)."""
_EXTENDED_TYPE: Final = 0xFF

pack_record_header: Final = _HEADER.pack
"""`pack_record_header(record_type, value_length)`: the 5-byte header of a record whose type is
not 0xFF (the producer's append path: a bound `struct` method, no Python frame per record)."""


def record_header(
    buffer: bytes | bytearray | memoryview, position: int = 0, *, extended: bool = True
) -> tuple[int, int] | None:
    """Read the header of the record at `position`: (header size, value length).

    The one reader of the TLV header layout: the 5-byte `[type u8][length u32 LE]`, or the
    7-byte `[0xFF][extended type u16 LE][length u32 LE]` after a 0xFF type byte. The decoder,
    the consumer (sizing the fetch that completes a record) and the server's crash recovery
    (finding the last whole record of a segment) all read headers with it.

    Args:
        buffer: A TLV stream (a `memoryview` of any contiguous bytes, an mmap for example).
        position: Where the record starts.
        extended: Read 0xFF's 7-byte header (this library's dialect); False reads every record
            with the 5-byte header, as Lance's Rust client writes them (`RecordDialect.RUST`).

    Returns:
        The header's size and the value's length, or None when `buffer` ends inside the header.
    """
    available = len(buffer) - position
    if available < RECORD_HEADER_SIZE:
        return None
    record_type, length = _HEADER.unpack_from(buffer, position)
    if record_type != _EXTENDED_TYPE or not extended:
        return RECORD_HEADER_SIZE, length
    if available < EXTENDED_HEADER_SIZE:
        return None
    return EXTENDED_HEADER_SIZE, _EXTENDED.unpack_from(buffer, position)[2]


class RecordType(IntEnum):
    """Record type byte: the public LWP table, plus this library's compressed envelope."""

    RESERVED = 0x00
    RAW_DATA = 0x01
    JSON = 0x02
    MSGPACK = 0x03
    PROTOBUF = 0x04
    AVRO = 0x05
    KEY_VALUE = 0x10
    TIMESTAMPED = 0x11
    KEY_TIMESTAMPED = 0x12
    LNC_COMPRESSED = 0xC0
    """lnc-client's compressed envelope, in the user-defined range 0x80-0xFE."""
    NULL = 0xFF
    """Written and read with the extended 7-byte header (see the module docstring)."""


class RecordDialect(StrEnum):
    """How the records of a stream are framed, by the client that wrote them.

    Both dialects share the TLV layout `[type u8][length u32 LE][value]`; they differ in what a
    few type bytes mean (docs/compatibility.md, "Record dialects").
    """

    LNC = "lnc"
    """This library (and lnc-client 0.2.9 types): 0xFF has the 7-byte extended header, 0xC0 is
    the LZ4 envelope, 0x02 is JSON and 0x10 key-value (`RecordType`)."""
    RUST = "rust"
    """Lance's Rust client (lnc-client crate): every record has the 5-byte header and is
    returned as written; its type bytes mean `RustRecordType` (0x02 Tombstone, 0x10 Compressed
    marker, 0xFF Unknown), and nothing is decompressed."""


class RustRecordType(IntEnum):
    """The type bytes of Lance's Rust client (read them with `RecordDialect.RUST`)."""

    DATA = 0x01
    TOMBSTONE = 0x02
    TRANSACTION = 0x03
    CHECKPOINT = 0x04
    SCHEMA = 0x05
    COMPRESSED = 0x10
    """A marker the Rust client defines but never writes itself (d562ea2); kept as is."""
    UNKNOWN = 0xFF


class CompressionCodec(IntEnum):
    """The codec byte that opens a `RecordType.LNC_COMPRESSED` value."""

    LZ4_BLOCK = 0x01


class _RecordSlots:
    """The storage of a `TlvRecord`: its three slots, which `_RecordBuilder` shares.

    With the slots in a common base, turning a builder into a `TlvRecord` (`__class__`
    assignment) needs no comparison of slot layouts: about 20 ns less per record.
    """

    __slots__ = ("extended_type", "record_type", "value")


@dataclass(frozen=True, slots=True)
class TlvRecord(_RecordSlots):
    """One TLV record.

    Attributes:
        record_type: The type byte (a `RecordType` or a user-defined value 0x80-0xFE).
        value: The record's value bytes.
        extended_type: For type 0xFF only: the u16 of the extended header.
    """

    record_type: int
    value: bytes
    extended_type: int = 0

    @property
    def total_size(self) -> int:
        """Bytes this record takes on the wire, header included."""
        header = EXTENDED_HEADER_SIZE if self.record_type == RecordType.NULL else RECORD_HEADER_SIZE
        return header + len(self.value)

    @property
    def is_null(self) -> bool:
        """Whether this is a NULL (tombstone) record."""
        return self.record_type == RecordType.NULL

    def encode(self) -> bytes:
        """Return the record's wire bytes (the extended header for type 0xFF)."""
        if not 0 <= self.record_type <= 0xFF:
            raise ValueError(f"record type {self.record_type} does not fit in a byte")
        if len(self.value) > _MAX_VALUE:
            raise ValueError("a record value is limited to 4 GiB - 1 bytes")
        if self.record_type == RecordType.NULL:
            return _EXTENDED.pack(0xFF, self.extended_type, len(self.value)) + self.value
        return _HEADER.pack(self.record_type, len(self.value)) + self.value

    @classmethod
    def raw(cls, data: bytes | bytearray | memoryview | str) -> TlvRecord:
        """Return a RAW_DATA (0x01) record; a `str` is stored as UTF-8."""
        return cls(RecordType.RAW_DATA, data.encode() if isinstance(data, str) else bytes(data))

    @classmethod
    def json(cls, data: object) -> TlvRecord:
        """Return a JSON (0x02) record.

        Args:
            data: Any JSON-serialisable Python object (encoded compactly as UTF-8 JSON), or
                `bytes`/`bytearray`/`memoryview` holding JSON that is already encoded.
        """
        return cls(RecordType.JSON, _value_bytes(data))

    @classmethod
    def json_value(cls, value: object) -> TlvRecord:
        """Return a JSON (0x02) record holding `value` encoded compactly as UTF-8 JSON."""
        return cls(RecordType.JSON, encode_json(value))

    @classmethod
    def key_value(cls, key: str | bytes, value: object) -> TlvRecord:
        """Return a KEY_VALUE (0x10) record: u16 LE key length, key, value.

        Args:
            key: The key; a `str` is stored as UTF-8 (at most 65535 bytes).
            value: Bytes as they are, or a Python object stored as compact UTF-8 JSON.
        """
        return cls(RecordType.KEY_VALUE, _key_prefix(key) + _value_bytes(value))

    @classmethod
    def timestamped(cls, timestamp_ns: int, data: object) -> TlvRecord:
        """Return a TIMESTAMPED (0x11) record: u64 LE nanoseconds, data.

        `data` is bytes as they are, or a Python object stored as compact UTF-8 JSON.
        """
        return cls(RecordType.TIMESTAMPED, _TIMESTAMP.pack(timestamp_ns) + _value_bytes(data))

    @classmethod
    def key_timestamped(cls, key: str | bytes, timestamp_ns: int, data: object) -> TlvRecord:
        """Return a KEY_TIMESTAMPED (0x12) record: u16 LE key length, key, u64 LE ns, data.

        `data` is bytes as they are, or a Python object stored as compact UTF-8 JSON.
        """
        return cls(
            RecordType.KEY_TIMESTAMPED,
            _key_prefix(key) + _TIMESTAMP.pack(timestamp_ns) + _value_bytes(data),
        )

    @classmethod
    def null(cls) -> TlvRecord:
        """Return a NULL (0xFF) record, written with the extended header."""
        return cls(RecordType.NULL, b"")

    def as_key_value(self) -> tuple[str, bytes]:
        """Split a KEY_VALUE record into (key, value).

        Raises:
            ProtocolError: The record is not KEY_VALUE, its key length runs past the value,
                or the key is not UTF-8.
        """
        key, value = self._split_key(RecordType.KEY_VALUE, 0)
        return _decode_key(key), value

    def as_timestamped(self) -> tuple[int, bytes]:
        """Split a TIMESTAMPED record into (timestamp_ns, data).

        Raises:
            ProtocolError: The record is not TIMESTAMPED or is shorter than 8 bytes.
        """
        if self.record_type != RecordType.TIMESTAMPED or len(self.value) < _TIMESTAMP.size:
            raise ProtocolError(f"not a TIMESTAMPED record: type {self.record_type:#04x}")
        return _TIMESTAMP.unpack_from(self.value)[0], self.value[_TIMESTAMP.size :]

    def as_key_timestamped(self) -> tuple[str, int, bytes]:
        """Split a KEY_TIMESTAMPED record into (key, timestamp_ns, data).

        Raises:
            ProtocolError: The record is not KEY_TIMESTAMPED or is malformed (including a key
                that is not UTF-8).
        """
        key, rest = self._split_key(RecordType.KEY_TIMESTAMPED, _TIMESTAMP.size)
        return _decode_key(key), _TIMESTAMP.unpack_from(rest)[0], rest[_TIMESTAMP.size :]

    def as_json(self) -> object:
        """Parse the value as UTF-8 JSON.

        Raises:
            ValueError: The value is not valid JSON.
        """
        return json.loads(self.value)

    def _split_key(self, expected: RecordType, extra: int) -> tuple[bytes, bytes]:
        value = self.value
        if self.record_type != expected or len(value) < _KEY_LEN.size:
            raise ProtocolError(f"not a {expected.name} record: type {self.record_type:#04x}")
        (key_length,) = _KEY_LEN.unpack_from(value)
        end = _KEY_LEN.size + key_length
        if end + extra > len(value):
            raise ProtocolError(f"{expected.name} record: key length {key_length} runs past value")
        return value[_KEY_LEN.size : end], value[end:]


def encode_json(value: object) -> bytes:
    """Encode `value` as compact UTF-8 JSON (no spaces, non-ASCII kept as UTF-8).

    Raises:
        TypeError: The value is not JSON-serialisable.
        ValueError: The value holds a circular reference, NaN or an infinity (not JSON).
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode()


def _value_bytes(value: object) -> bytes:
    """Bytes-like values as they are; any other object as compact UTF-8 JSON."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return encode_json(value)


def _key_prefix(key: str | bytes) -> bytes:
    key_bytes = key.encode() if isinstance(key, str) else bytes(key)
    if len(key_bytes) > 0xFFFF:
        raise ValueError("a key is limited to 65535 bytes")
    return _KEY_LEN.pack(len(key_bytes)) + key_bytes


def _decode_key(key: bytes) -> str:
    try:
        return key.decode()
    except UnicodeDecodeError:
        raise ProtocolError(f"record key is not UTF-8: {key!r}") from None


def encode_values(
    values: Sequence[bytes | bytearray | memoryview], record_type: int = RecordType.RAW_DATA
) -> bytes:
    """Encode many values of one type into a TLV stream, without per-record Python objects.

    This is the producer's hot path: all iteration happens inside C (`bytes.join`, `map`,
    slice assignment), with one header built per distinct value length.

    Args:
        values: The record values.
        record_type: The type byte for every record; 0xFF is not allowed here (use
            `encode_records` with `TlvRecord.null()`).

    Raises:
        ValueError: An unsupported record type.
        TypeError: A value that is not bytes-like (other buffers, such as a memoryview of
            ints, are encoded as their bytes).
    """
    if not 0 <= record_type < 0xFF:
        raise ValueError(f"encode_values takes record types 0x00-0xFE, not {record_type:#x}")
    if not values:
        return b""
    count = len(values)
    try:
        lengths = list(map(len, values))
        if lengths.count(lengths[0]) == count:
            # header.join over ["", v1, v2, ...] gives header v1 header v2 ... in one copy
            stream = _HEADER.pack(record_type, lengths[0]).join(chain(_LEADING_EMPTY, values))
            size = count * (RECORD_HEADER_SIZE + lengths[0])
        else:
            headers = {length: _HEADER.pack(record_type, length) for length in set(lengths)}
            parts: list[bytes | bytearray | memoryview] = [b""] * (2 * count)
            parts[0::2] = map(headers.__getitem__, lengths)
            parts[1::2] = values
            stream = b"".join(parts)
            size = count * RECORD_HEADER_SIZE + sum(lengths)
    except TypeError:  # a value that is not a contiguous buffer, or has no len()
        return encode_values(list(map(as_record_value, values)), record_type)
    if len(stream) != size:
        # a buffer whose len() counts items, not bytes (a memoryview of ints, an array)
        return encode_values(list(map(as_record_value, values)), record_type)
    return stream


def as_record_value(data: object) -> bytes | bytearray | memoryview:
    """Return `data` as a record value whose `len()` is its size in bytes.

    `bytes` and `bytearray` are taken as they are; any other bytes-like object (a `memoryview`,
    an `array.array`, an `mmap`) becomes a flat byte view of it (a copy when it is not
    contiguous), so a record header counts bytes, not items.

    Raises:
        TypeError: `data` is not bytes-like (a `str`, an `int`, a list, None, ...).
    """
    if isinstance(data, bytes | bytearray):
        return data
    try:
        # memoryview() takes any object and raises TypeError unless it exports a buffer
        view = memoryview(cast("bytes", data))
    except TypeError:
        raise TypeError(
            f"a record value is bytes-like (bytes, bytearray, memoryview), not "
            f"{type(data).__name__}: encode text first, e.g. value.encode()"
        ) from None
    if not view.c_contiguous:
        return view.tobytes()
    return view if view.ndim == 1 and view.itemsize == 1 else view.cast("B")


def encode_records(records: Iterable[TlvRecord]) -> bytes:
    """Encode typed records into one TLV stream."""
    return b"".join(record.encode() for record in records)


def compress_records(
    stream: bytes | bytearray, *, codec: CompressionCodec = CompressionCodec.LZ4_BLOCK
) -> bytes:
    """Wrap an encoded TLV stream into one `LNC_COMPRESSED` record.

    The envelope value is `[codec u8][uncompressed length u32 LE][compressed body]`; for
    `LZ4_BLOCK` the body is a raw LZ4 block without its own size prefix. The envelope is an
    ordinary TLV record, so the server's crash recovery and any TLV scanner step over it.

    Args:
        stream: An encoded TLV stream (it must not itself contain envelopes).
        codec: The compression codec.

    Returns:
        The envelope record's bytes.
    """
    body: bytes = lz4.block.compress(stream, store_size=False)
    value_length = _ENVELOPE.size + len(body)
    return (
        _HEADER.pack(RecordType.LNC_COMPRESSED, value_length)
        + _ENVELOPE.pack(codec, len(stream))
        + body
    )


def _open_envelope(value: bytes) -> list[TlvRecord]:
    if len(value) < _ENVELOPE.size:
        raise ProtocolError("compressed record shorter than its 5-byte envelope header")
    codec, size = _ENVELOPE.unpack_from(value)
    if codec != CompressionCodec.LZ4_BLOCK:
        raise ProtocolError(f"unknown compression codec {codec:#04x}")
    body_length = len(value) - _ENVELOPE.size
    if size > _LZ4_MAX_RATIO * body_length:
        raise ProtocolError(
            f"compressed record claims {size} bytes from a {body_length}-byte LZ4 block"
        )
    try:
        inner: bytes = lz4.block.decompress(value[_ENVELOPE.size :], uncompressed_size=size)
    except lz4.block.LZ4BlockError as error:
        raise ProtocolError(f"corrupt LZ4 block in compressed record: {error}") from None
    if len(inner) != size:
        raise ProtocolError("compressed record: decompressed size differs from its header")
    records, used = decode_stream(inner, decompress=False)
    if used != len(inner):
        raise ProtocolError("compressed record: inner stream ends inside a record")
    if any(record.record_type == RecordType.LNC_COMPRESSED for record in records):
        raise ProtocolError("compressed record: nested envelopes are not allowed")
    return records


_COMPRESSED_TYPE: Final = int(RecordType.LNC_COMPRESSED)
_SPECIAL_TYPES: Final = frozenset((_COMPRESSED_TYPE, _EXTENDED_TYPE))


class _RecordBuilder(_RecordSlots):
    """A mutable twin of `TlvRecord` with the very same slots, for the decoder's hot loop.

    Building a frozen dataclass costs three descriptor calls per record. The decoder instead
    fills one of these with plain attribute stores and then sets its `__class__` to
    `TlvRecord`, which Python allows because both classes keep their slots in `_RecordSlots`.
    The result is an ordinary, frozen `TlvRecord`; only its construction is cheaper.
    """

    __slots__ = ()
    record_type: int
    value: bytes
    extended_type: int


_PROBE_RECORDS: Final = 16
"""How many records the decoder looks ahead for a run of equal headers, and how many it
decodes one by one after a probe that found none (doubled after each further miss, up to
`_MAX_PROBE_GAP`, so streams of varying lengths pay almost nothing for the probes)."""
_MAX_PROBE_GAP: Final = 1024


def _uniform_run(buffer: bytes, pos: int, stride: int, remaining: int) -> int:
    """Count the records from `pos` on that have the very header of the record at `pos`.

    Records of one type and one length lie at a fixed stride, so a run of them is found by
    comparing every header byte position at once (`buffer[i::stride]`, in C). The run is probed
    with `_PROBE_RECORDS` records, then doubled while it holds; it ends where the buffer, the
    `remaining` count (-1: none) or the first other header does.

    Returns:
        The run's length, or 0 when the first probe already met another header.
    """
    limit = (len(buffer) - pos) // stride
    if 0 <= remaining < limit:
        limit = remaining
    size = min(_PROBE_RECORDS, limit)
    if size < 2:
        return 0
    header = buffer[pos : pos + RECORD_HEADER_SIZE]
    if buffer[pos + stride : pos + stride + RECORD_HEADER_SIZE] != header:
        return 0  # the common miss, found with one comparison
    good = 1
    while True:
        first = pos + good * stride
        count = size - good
        stop = first + count * stride
        for index in range(RECORD_HEADER_SIZE):
            if buffer[first + index : stop : stride] != header[index : index + 1] * count:
                return good if good > 1 else 0
        good = size
        if size == limit:
            return good
        size = min(2 * size, limit)


@dataclass(frozen=True, slots=True)
class _Run:
    """`count` records of one type and one value length, back to back in `buffer` from `pos`.

    The records are built when they are read: iterating cuts all the values out in C
    (`struct.iter_unpack`), and Python only builds the `TlvRecord`s, one at a time, so a reader
    that drops each record after use leaves nothing for the garbage collector to trace.
    """

    buffer: bytes
    pos: int
    record_type: int
    length: int
    count: int

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> TlvRecord:
        start = self.pos + index * (RECORD_HEADER_SIZE + self.length) + RECORD_HEADER_SIZE
        return TlvRecord(self.record_type, self.buffer[start : start + self.length])

    def __iter__(self) -> Iterator[TlvRecord]:
        size = RECORD_HEADER_SIZE + self.length
        window = memoryview(self.buffer)[self.pos : self.pos + self.count * size]
        record_type = self.record_type
        builder, record_class = _RecordBuilder, TlvRecord
        for (value,) in struct.iter_unpack(f"<{RECORD_HEADER_SIZE}x{self.length}s", window):
            record = builder()
            record.record_type = record_type
            record.value = value
            record.extended_type = 0
            record.__class__ = record_class  # type: ignore[assignment]
            # it is a TlvRecord from the line above; typing.cast would cost a call per record
            yield record  # type: ignore[misc]


_Chunk = list[TlvRecord] | _Run


class RecordSequence(Sequence[TlvRecord]):
    """The records of a decoded window, built as they are read.

    `decode_window` returns one. It holds the window (immutable `bytes`) and where its records
    lie; each `TlvRecord` is made when it is read (iteration or indexing), with its value
    copied out as `bytes`, so records and values stay valid for good. Counting records
    (`len`) builds none. Reading an index twice gives two equal records, not the same object.
    A slice is a `list`. A sequence equals any sequence of equal records, a `list` included.
    """

    __slots__ = ("_chunks", "_count", "_starts")

    def __init__(self, chunks: list[_Chunk]) -> None:
        self._chunks = chunks
        self._starts: list[int] = []
        count = 0
        for chunk in chunks:
            self._starts.append(count)
            count += len(chunk)
        self._count = count

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> TlvRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[TlvRecord]: ...

    def __getitem__(self, index: int | slice) -> TlvRecord | list[TlvRecord]:
        if isinstance(index, slice):
            return list(self)[index]
        position = index + self._count if index < 0 else index
        if not 0 <= position < self._count:
            raise IndexError("record index out of range")
        at = bisect_right(self._starts, position) - 1
        return self._chunks[at][position - self._starts[at]]

    def __iter__(self) -> Iterator[TlvRecord]:
        return chain.from_iterable(self._chunks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes | bytearray):
            return NotImplemented
        return len(self) == len(other) and all(map(TlvRecord.__eq__, self, other))

    __hash__ = None  # type: ignore[assignment]  # mutable-looking like a list: unhashable

    def __repr__(self) -> str:
        return f"RecordSequence({list(self)!r})"


def decode_stream(
    buffer: bytes | bytearray | memoryview,
    *,
    decompress: bool = True,
    max_records: int | None = None,
    dialect: RecordDialect = RecordDialect.LNC,
) -> tuple[list[TlvRecord], int]:
    """Decode the complete records at the start of `buffer`.

    A record whose header or value runs past the end of the buffer is left alone: its bytes
    (from the returned `used` onwards) belong to the next fetch window.

    Args:
        buffer: A TLV stream, possibly cut anywhere at its end. Anything but `bytes` is copied
            once, so that every record value is an independent `bytes` object.
        decompress: Open `LNC_COMPRESSED` envelopes and return the records inside them.
        max_records: Stop after this many outer records (None for no limit).
        dialect: Who wrote the stream; `RecordDialect.RUST` reads every record with the 5-byte
            header and opens no envelope.

    Returns:
        The records, and how many bytes of `buffer` they used.

    Raises:
        ProtocolError: A compressed envelope is corrupt.
    """
    chunks, used = _decode(buffer, decompress, max_records, dialect)
    return list(chain.from_iterable(chunks)), used


def decode_window(
    buffer: bytes | bytearray | memoryview,
    *,
    decompress: bool = True,
    max_records: int | None = None,
    dialect: RecordDialect = RecordDialect.LNC,
) -> tuple[RecordSequence, int]:
    """Decode like `decode_stream`, but hand the records out as a `RecordSequence`.

    The headers are all read (and envelopes opened) now, so errors surface here; the records
    of runs of one type and length (as `encode_values` writes them) are built only when read.
    The consumer's `PollResult.records` is one.

    Raises:
        ProtocolError: A compressed envelope is corrupt.
    """
    chunks, used = _decode(buffer, decompress, max_records, dialect)
    return RecordSequence(chunks), used


def _decode(
    buffer: bytes | bytearray | memoryview,
    decompress: bool,
    max_records: int | None,
    dialect: RecordDialect,
) -> tuple[list[_Chunk], int]:
    """The decoder of `decode_stream` and `decode_window`: the records in chunks, bytes used.

    A chunk is a list of records decoded one by one, or a `_Run` of equal headers.
    """
    if not isinstance(buffer, bytes):
        buffer = bytes(buffer)
    chunks: list[_Chunk] = []
    records: list[TlvRecord | _RecordBuilder] = []
    append = records.append
    unpack = _HEADER.unpack_from
    builder, record_class, header_size = _RecordBuilder, TlvRecord, RECORD_HEADER_SIZE
    first_special, specials = _COMPRESSED_TYPE, _SPECIAL_TYPES
    if dialect is RecordDialect.RUST:
        first_special = 0x100  # no type byte is special
    end = len(buffer)
    pos = 0
    remaining = -1 if max_records is None else max_records
    probe_in = 0
    probe_gap = _PROBE_RECORDS
    while remaining and end - pos >= header_size:
        record_type, length = unpack(buffer, pos)
        if record_type >= first_special and record_type in specials:
            special = _decode_special(buffer, pos, end, decompress=decompress)
            if special is None:
                break
            pos, found = special
            records += found
        else:
            stop = pos + header_size + length
            if stop > end:
                break
            if not probe_in:
                run = _uniform_run(buffer, pos, stop - pos, remaining)
                if run:
                    if records:
                        chunks.append(cast("list[TlvRecord]", records))
                        records = []
                        append = records.append
                    chunks.append(_Run(buffer, pos, record_type, length, run))
                    pos += run * (stop - pos)
                    remaining -= run
                    probe_gap = _PROBE_RECORDS
                    continue
                probe_in = probe_gap
                probe_gap = min(2 * probe_gap, _MAX_PROBE_GAP)
            probe_in -= 1
            record = builder()
            record.record_type = record_type
            record.value = buffer[pos + header_size : stop]
            record.extended_type = 0
            record.__class__ = record_class  # type: ignore[assignment]
            append(record)
            pos = stop
        remaining -= 1
    if records:
        chunks.append(cast("list[TlvRecord]", records))
    return chunks, pos


def _decode_special(
    buffer: bytes, pos: int, end: int, *, decompress: bool
) -> tuple[int, list[TlvRecord]] | None:
    """Decode the record of type 0xFF (extended header) or 0xC0 (envelope) at `pos`.

    Returns:
        The position after it and the records it holds, or None if it runs past `end`.
    """
    header = record_header(buffer, pos)
    if header is None:
        return None
    header_size, length = header
    start = pos + header_size
    stop = start + length
    if stop > end:
        return None
    record_type = buffer[pos]
    extended = _EXTENDED.unpack_from(buffer, pos)[1] if record_type == _EXTENDED_TYPE else 0
    if record_type == _COMPRESSED_TYPE and decompress:
        return stop, _open_envelope(buffer[start:stop])
    return stop, [TlvRecord(record_type, buffer[start:stop], extended)]


def decode_records(
    payload: bytes, expected_count: int | None = None, *, strict: bool = False
) -> list[TlvRecord]:
    """Decode the records of a TLV payload.

    By default this behaves as in lnc-client 0.2.9: at most `expected_count` records are
    decoded and an incomplete record at the end is left out. A fetch window may end inside a
    record, so to keep that tail use `decode_stream`, which also returns the bytes used.

    Args:
        payload: A TLV stream (one ingest payload, for example).
        expected_count: Decode at most this many records (exactly this many when `strict`).
        strict: Treat an incomplete last record or another count as corruption.

    Raises:
        ProtocolError: With `strict`: the payload ends inside a record, or holds another
            number of records than `expected_count`.
    """
    records, used = decode_stream(payload)
    if strict and used != len(payload):
        raise ProtocolError(f"TLV payload ends inside a record at byte {used} of {len(payload)}")
    if strict and expected_count is not None and len(records) != expected_count:
        raise ProtocolError(f"expected {expected_count} records, found {len(records)}")
    return records if expected_count is None else records[:expected_count]
