"""LWP frames: the 44-byte header, frame classification, encoders and the incremental decoder.

Sans-I/O: nothing here touches a socket, a clock or an event loop. Bytes flow in two directions:

* **Out:** a caller builds a frame with `encode_frame` (or one of the `build_*` helpers); the
  header CRC (IEEE CRC-32 of bytes 0..8, PROTOCOL.md §1.2) and the payload CRC are computed here.
  `encode_header` returns the 44 header bytes alone so that a large payload can be written after
  it without being copied (`transport.writelines([header, payload])`).
* **In:** a `FrameDecoder` is fed bytes in chunks of any size, either as `bytes` (`feed`) or by
  letting the transport read straight into its buffer (`get_buffer` / `buffer_updated`, the
  `asyncio.BufferedProtocol` style). It returns every complete `Frame`, whose payload is a
  zero-copy `memoryview` into the received bytes, and raises `InvalidFrameError` on the first
  framing fault, checked in the real server's order (PROTOCOL.md §1.4): size limit, magic,
  version, header CRC, then payload CRC. After a fault the stream cannot be resynchronised, so
  the decoder stays failed and the caller closes the connection.

`classify` maps a header to a `FrameType` with exactly the precedence of PROTOCOL.md §1.5.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Final

from lnc_client.errors import FrameFault, InvalidFrameError

__all__ = [
    "ACK_FLAGS",
    "CONTROL_FLAGS",
    "DEFAULT_PORT",
    "HEADER_SIZE",
    "KEEPALIVE_FRAME",
    "KEEPALIVE_INTERVAL_S",
    "KEEPALIVE_TIMEOUT_S",
    "MAGIC",
    "MAX_PAYLOAD_SIZE",
    "MAX_RECORD_SIZE",
    "PROTOCOL_VERSION",
    "ControlCommand",
    "Flag",
    "Frame",
    "FrameDecoder",
    "FrameType",
    "LwpHeader",
    "build_ack_frame",
    "build_backpressure_frame",
    "build_control_frame",
    "build_ingest_frame",
    "build_keepalive_frame",
    "classify",
    "encode_frame",
    "encode_header",
    "header_crc",
    "header_for",
]

MAGIC: Final = b"LANC"
PROTOCOL_VERSION: Final = 1
HEADER_SIZE: Final = 44
DEFAULT_PORT: Final = 1992
MAX_PAYLOAD_SIZE: Final = 16 * 1024 * 1024
"""The real server's default `max_payload_size`: a larger payload closes the connection."""
MAX_RECORD_SIZE: Final = MAX_PAYLOAD_SIZE
"""No record can be larger than the payload that carries it (lnc-client 0.2.9 name)."""
KEEPALIVE_INTERVAL_S: Final = 10
"""How often an idle client sends a keepalive (the clients' default; the server sends none)."""
KEEPALIVE_TIMEOUT_S: Final = 30
"""The Lance clients' read timeout; the server itself never closes an idle connection."""

_HEADER: Final = struct.Struct("<4sBBHIQQIIII")
_AFTER_PREFIX: Final = struct.Struct("<IQQIIII")
_PAYLOAD_LENGTH_AT: Final = 32
_U32: Final = struct.Struct("<I")


class Flag(IntFlag):
    """Bits of the header's flags byte (PROTOCOL.md §1.1, §1.5)."""

    NONE = 0x00
    COMPRESSED = 0x01
    ENCRYPTED = 0x02
    BATCH_MODE = 0x04
    ACK = 0x08
    BACKPRESSURE = 0x10
    KEEPALIVE = 0x20
    CONTROL = 0x40


ACK_FLAGS: Final = Flag.ACK
CONTROL_FLAGS: Final = Flag.CONTROL


class ControlCommand(IntEnum):
    """Control command and response codes; carried in the low byte of batch_id (§1.5)."""

    CREATE_TOPIC = 0x01
    DELETE_TOPIC = 0x02
    LIST_TOPICS = 0x03
    GET_TOPIC = 0x04
    SET_RETENTION = 0x05
    CREATE_TOPIC_WITH_RETENTION = 0x06
    GET_CLUSTER_STATUS = 0x07
    AUTHENTICATE = 0x08
    AUTHENTICATE_RESPONSE = 0x09
    FETCH = 0x10
    FETCH_RESPONSE = 0x11
    CATCHING_UP = 0x12
    SUBSCRIBE = 0x20
    UNSUBSCRIBE = 0x21
    COMMIT_OFFSET = 0x22
    SUBSCRIBE_ACK = 0x23
    COMMIT_ACK = 0x24
    TOPIC_RESPONSE = 0x80
    CLUSTER_STATUS_RESPONSE = 0x81
    ERROR_RESPONSE = 0xFF


class FrameType(IntEnum):
    """What a frame is, as decided by `classify` (PROTOCOL.md §1.5)."""

    CONTROL = 1
    KEEPALIVE = 2
    ACK = 3
    BACKPRESSURE = 4
    INGEST = 5
    UNKNOWN = 6


def _classify_rules(flags: int, has_payload: bool) -> FrameType:
    if flags & Flag.CONTROL:
        return FrameType.CONTROL
    if flags & Flag.KEEPALIVE:
        return FrameType.KEEPALIVE
    if flags & Flag.ACK:
        return FrameType.ACK
    if flags & Flag.BACKPRESSURE:
        return FrameType.BACKPRESSURE
    if flags & Flag.BATCH_MODE or has_payload:
        return FrameType.INGEST
    return FrameType.UNKNOWN


_TYPE_BY_FLAGS: Final[list[tuple[FrameType, FrameType]]] = [
    (_classify_rules(f, False), _classify_rules(f, True)) for f in range(256)
]
"""`classify` for each flags byte, without and with a payload (enum bit tests are slow)."""


def classify(flags: int, payload_length: int) -> FrameType:
    """Classify a frame exactly as the real server does: first matching rule wins.

    Args:
        flags: The header's flags byte.
        payload_length: The header's payload_length.

    Returns:
        Control (0x40) before Keepalive (0x20) before Ack (0x08) before Backpressure (0x10);
        then Ingest when BatchMode (0x04) is set or there is a payload; else Unknown.
    """
    return _TYPE_BY_FLAGS[flags & 0xFF][payload_length > 0]


def _prefix(flags: int, reserved: int = 0) -> bytes:
    return MAGIC + bytes((PROTOCOL_VERSION, flags, reserved & 0xFF, reserved >> 8))


_HEADER_CRC_BY_FLAGS: Final[list[int]] = [zlib.crc32(_prefix(f)) for f in range(256)]


def header_crc(flags: int, reserved: int = 0) -> int:
    """Return the header CRC: IEEE CRC-32 of bytes 0..8 (magic, version, flags, reserved).

    Args:
        flags: The flags byte.
        reserved: The 16-bit reserved field; the server always sends 0.
    """
    if reserved == 0:
        return _HEADER_CRC_BY_FLAGS[flags]
    return zlib.crc32(_prefix(flags, reserved))


@dataclass(frozen=True, slots=True)
class LwpHeader:
    """The 44-byte LWP frame header, every integer little-endian (PROTOCOL.md §1.1).

    Attributes:
        version: Protocol version; must be 1.
        flags: Flag bits.
        header_crc: CRC of bytes 0..8 as received; `encode` always writes the right one.
        batch_id: Ingest batch id, or the command code of a control frame.
        timestamp_ns: Ingest timestamp in nanoseconds.
        record_count: Ingest record count (the server only uses it for metrics).
        payload_length: Bytes of payload that follow the header.
        payload_crc: CRC-32 of the payload (0 when there is none).
        topic_id: Ingest target topic.
        reserved: The 16-bit reserved field.
    """

    version: int = PROTOCOL_VERSION
    flags: int = 0
    header_crc: int = 0
    batch_id: int = 0
    timestamp_ns: int = 0
    record_count: int = 0
    payload_length: int = 0
    payload_crc: int = 0
    topic_id: int = 0
    reserved: int = 0

    def encode(self) -> bytes:
        """Return the 44 header bytes, with the header CRC computed from bytes 0..8."""
        prefix = MAGIC + bytes((self.version, self.flags, self.reserved & 0xFF, self.reserved >> 8))
        return prefix + _AFTER_PREFIX.pack(
            zlib.crc32(prefix),
            self.batch_id,
            self.timestamp_ns,
            self.record_count,
            self.payload_length,
            self.payload_crc,
            self.topic_id,
        )

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> LwpHeader:
        """Parse and validate a header: magic, version, then header CRC.

        Args:
            data: At least 44 bytes; only the first 44 are read.

        Raises:
            InvalidFrameError: Fewer than 44 bytes, or a check failed.
        """
        if len(data) < HEADER_SIZE:
            raise InvalidFrameError(FrameFault.TRUNCATED, f"{len(data)} of {HEADER_SIZE} bytes")
        return _decode_header(memoryview(data), 0)

    @property
    def frame_type(self) -> FrameType:
        """The frame's type by the server's precedence rules."""
        return classify(self.flags, self.payload_length)

    @property
    def is_ack(self) -> bool:
        """Whether this is an Ack frame."""
        return self.frame_type is FrameType.ACK

    @property
    def is_keepalive(self) -> bool:
        """Whether this is a Keepalive frame."""
        return self.frame_type is FrameType.KEEPALIVE

    @property
    def is_backpressure(self) -> bool:
        """Whether this is a Backpressure frame."""
        return self.frame_type is FrameType.BACKPRESSURE

    @property
    def is_control(self) -> bool:
        """Whether this is a control frame (flags & 0x40)."""
        return self.frame_type is FrameType.CONTROL

    @property
    def is_batch(self) -> bool:
        """Whether this is an ingest frame."""
        return self.frame_type is FrameType.INGEST

    @property
    def is_compressed(self) -> bool:
        """Whether the Compressed bit is set (the real server ignores it)."""
        return bool(self.flags & Flag.COMPRESSED)

    @property
    def command(self) -> int:
        """The control command code: the low byte of batch_id (§1.5)."""
        return self.batch_id & 0xFF


def _decode_header(view: memoryview, pos: int) -> LwpHeader:
    (magic, version, flags, reserved, crc, batch_id, ts, count, length, payload_crc, topic) = (
        _HEADER.unpack_from(view, pos)
    )
    if magic != MAGIC:
        raise InvalidFrameError(FrameFault.BAD_MAGIC, repr(magic))
    if version != PROTOCOL_VERSION:
        raise InvalidFrameError(FrameFault.BAD_VERSION, str(version))
    expected = _HEADER_CRC_BY_FLAGS[flags] if reserved == 0 else header_crc(flags, reserved)
    if crc != expected:
        raise InvalidFrameError(FrameFault.HEADER_CRC, f"got {crc:#010x}, want {expected:#010x}")
    return LwpHeader(version, flags, crc, batch_id, ts, count, length, payload_crc, topic, reserved)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame.

    Attributes:
        header: The validated header.
        payload: The payload; a zero-copy view into the received bytes (empty when none).
    """

    header: LwpHeader
    payload: memoryview | bytes

    @property
    def frame_type(self) -> FrameType:
        """The frame's type by the server's precedence rules."""
        return classify(self.header.flags, self.header.payload_length)

    @property
    def command(self) -> int:
        """The control code of a control frame (low byte of batch_id)."""
        return self.header.batch_id & 0xFF

    def encode(self) -> bytes:
        """Return the frame's bytes: header (with its CRC) and payload."""
        return self.header.encode() + bytes(self.payload)


def encode_header(
    flags: int,
    *,
    batch_id: int = 0,
    timestamp_ns: int = 0,
    record_count: int = 0,
    payload_length: int = 0,
    payload_crc: int = 0,
    topic_id: int = 0,
) -> bytes:
    """Return a 44-byte header with its CRC; the payload CRC is given by the caller.

    Args:
        flags: The flags byte.
        batch_id: Batch id, or the command code of a control frame.
        timestamp_ns: Nanosecond timestamp.
        record_count: Record count.
        payload_length: Length of the payload that will follow.
        payload_crc: `zlib.crc32` of that payload, or 0 when there is none.
        topic_id: Target topic.
    """
    return _HEADER.pack(
        MAGIC,
        PROTOCOL_VERSION,
        flags,
        0,
        _HEADER_CRC_BY_FLAGS[flags],
        batch_id,
        timestamp_ns,
        record_count,
        payload_length,
        payload_crc,
        topic_id,
    )


def header_for(
    flags: int,
    payload: bytes | bytearray | memoryview,
    *,
    batch_id: int = 0,
    timestamp_ns: int = 0,
    record_count: int = 0,
    topic_id: int = 0,
) -> bytes:
    """Return the 44-byte header for `payload` (its length and CRC filled in), not the payload.

    Lets a caller write a large payload after its header without copying it into one frame.

    Args:
        flags: The flags byte.
        payload: The payload that will follow the header.
        batch_id: Batch id, or the command code of a control frame.
        timestamp_ns: Nanosecond timestamp.
        record_count: Record count.
        topic_id: Target topic.
    """
    length = len(payload)
    return encode_header(
        flags,
        batch_id=batch_id,
        timestamp_ns=timestamp_ns,
        record_count=record_count,
        payload_length=length,
        payload_crc=zlib.crc32(payload) if length else 0,
        topic_id=topic_id,
    )


def encode_frame(
    flags: int,
    payload: bytes | bytearray | memoryview = b"",
    *,
    batch_id: int = 0,
    timestamp_ns: int = 0,
    record_count: int = 0,
    topic_id: int = 0,
) -> bytes:
    """Return a complete frame: header with both CRCs, then the payload.

    Args:
        flags: The flags byte.
        payload: The payload bytes.
        batch_id: Batch id, or the command code of a control frame.
        timestamp_ns: Nanosecond timestamp.
        record_count: Record count.
        topic_id: Target topic.
    """
    header = header_for(
        flags,
        payload,
        batch_id=batch_id,
        timestamp_ns=timestamp_ns,
        record_count=record_count,
        topic_id=topic_id,
    )
    return header + payload


def build_ingest_frame(
    payload: bytes | bytearray | memoryview,
    batch_id: int,
    record_count: int,
    topic_id: int = 0,
    *,
    timestamp_ns: int = 0,
    compressed: bool = False,
) -> bytes:
    """Return an ingest frame (flags BatchMode, plus Compressed if asked).

    Args:
        payload: The batch payload, normally a TLV record stream.
        batch_id: The id the server echoes back in the Ack.
        record_count: Number of records (metrics only on the server).
        topic_id: Target topic.
        timestamp_ns: Batch timestamp in nanoseconds.
        compressed: Set the Compressed bit. The real server ignores it and stores the bytes as
            sent; use TLV-level compression (`lnc_client.protocol.records`) for real savings.
    """
    flags = Flag.BATCH_MODE | (Flag.COMPRESSED if compressed else 0)
    return encode_frame(
        flags,
        payload,
        batch_id=batch_id,
        timestamp_ns=timestamp_ns,
        record_count=record_count,
        topic_id=topic_id,
    )


KEEPALIVE_FRAME: Final = encode_header(Flag.KEEPALIVE)
"""Vector 1: the keepalive a client sends and the server echoes byte for byte."""

_BACKPRESSURE_FRAME: Final = encode_header(Flag.BACKPRESSURE)


def build_keepalive_frame() -> bytes:
    """Return the keepalive frame (PROTOCOL.md Vector 1)."""
    return KEEPALIVE_FRAME


def build_backpressure_frame() -> bytes:
    """Return a Backpressure frame (flags 0x10, every other field 0)."""
    return _BACKPRESSURE_FRAME


def build_ack_frame(batch_id: int) -> bytes:
    """Return the Ack the server sends for a durable batch: only batch_id set (§2.6)."""
    return encode_header(Flag.ACK, batch_id=batch_id)


def build_control_frame(
    command: int, payload: bytes | bytearray | memoryview = b"", topic_id: int = 0
) -> bytes:
    """Return a control frame: flags 0x40 and the command code in batch_id (§4.1).

    Args:
        command: A `ControlCommand` (request or response code).
        payload: The command's payload.
        topic_id: Kept for API compatibility; the server ignores it in control frames.
    """
    return encode_frame(Flag.CONTROL, payload, batch_id=int(command), topic_id=topic_id)


_EMPTY: Final = b""
_MIN_FREE: Final = 4096


class FrameDecoder:
    """Incremental, zero-copy frame decoder for a byte stream.

    Feed it chunks of any size; it returns complete frames in order. Payload views point into
    buffers the decoder never writes again, so frames stay valid as long as the caller keeps
    them. Memory is bounded by one buffer of `buffer_size` or one frame, whichever is larger.

    Two ways to size the buffer. By default (a client, which trusts its server) the space for a
    whole frame is made as soon as its header arrives, so a large frame is received with one
    buffer move at most. With `min_buffer_size` (a server, facing untrusted peers) the decoder
    starts with that much, doubles it (up to `buffer_size`) only when reads fill it, grows past
    it only in proportion to the bytes of a frame actually received (a 44-byte header declaring
    16 MiB pins about 8 KiB, not 16 MiB), and `shrink()` gives the memory back when idle.

    Args:
        max_payload_size: Largest accepted payload_length; larger closes the stream with
            `FrameFault.PAYLOAD_TOO_LARGE` (checked first, as the server does).
        buffer_size: Size of the receive buffers handed to the transport.
        min_buffer_size: Grow with the data from this size (see above); None to size eagerly.
    """

    __slots__ = (
        "_buf",
        "_buffer_size",
        "_end",
        "_exported",
        "_failure",
        "_max",
        "_min",
        "_need",
        "_start",
    )

    def __init__(
        self,
        *,
        max_payload_size: int = MAX_PAYLOAD_SIZE,
        buffer_size: int = 256 * 1024,
        min_buffer_size: int | None = None,
    ) -> None:
        if max_payload_size < 0 or buffer_size < HEADER_SIZE:
            raise ValueError("max_payload_size must be >= 0 and buffer_size >= 44")
        if min_buffer_size is not None and not HEADER_SIZE <= min_buffer_size <= buffer_size:
            raise ValueError("min_buffer_size must be in 44..buffer_size")
        self._max = max_payload_size
        self._buffer_size = buffer_size
        self._min = min_buffer_size
        self._buf = memoryview(bytearray(buffer_size if min_buffer_size is None else 0))
        self._start = 0
        self._end = 0
        self._need = HEADER_SIZE
        self._exported = False
        self._failure: InvalidFrameError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a complete frame."""
        return self._end - self._start

    @property
    def capacity(self) -> int:
        """Size of the current receive buffer."""
        return len(self._buf)

    @property
    def max_payload_size(self) -> int:
        """Largest accepted payload_length; may be changed between reads."""
        return self._max

    @max_payload_size.setter
    def max_payload_size(self, value: int) -> None:
        self._max = value

    def shrink(self) -> None:
        """Drop the receive buffer while nothing is buffered (with `min_buffer_size` only)."""
        if self._min is not None and self._start == self._end and len(self._buf):
            self._buf = memoryview(bytearray(0))
            self._start = self._end = 0
            self._exported = False

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Return writable space for the next read (`asyncio.BufferedProtocol.get_buffer`).

        By default the space always has room for the rest of the frame being received, so a
        frame of any allowed size is received with one buffer move at most.

        Args:
            sizehint: The transport's hint; unused, the decoder sizes buffers by frame.
        """
        self._raise_if_failed()
        capacity = len(self._buf)
        free = capacity - self._end
        if (
            free < _MIN_FREE
            if self._min is not None
            else (self._start + self._need > capacity or free < _MIN_FREE)
        ):
            self._relocate()
        return self._buf[self._end :]

    def buffer_updated(self, nbytes: int) -> list[Frame]:
        """Account for `nbytes` written into the last `get_buffer` and return new frames.

        Raises:
            InvalidFrameError: A framing fault; the decoder stays failed. Its `frames` holds
                the valid frames this call decoded before the fault.
        """
        self._raise_if_failed()
        frames: list[Frame] = []
        self._advance(nbytes, frames)
        return frames

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Add received bytes and return every frame they complete, in order.

        `bytes` arriving at a frame boundary are parsed in place, without a copy; the rest is
        copied into the decoder's buffer.

        Raises:
            InvalidFrameError: A framing fault; the decoder stays failed. Its `frames` holds
                the valid frames this call decoded before the fault.
        """
        self._raise_if_failed()
        frames: list[Frame] = []
        rest = memoryview(data).cast("B")
        if isinstance(data, bytes) and self._start == self._end:
            rest = rest[self._parse(rest, 0, len(rest), frames) :]
        while rest:
            space = self.get_buffer()
            take = min(len(space), len(rest))
            space[:take] = rest[:take]
            rest = rest[take:]
            self._advance(take, frames)
        return frames

    def _advance(self, nbytes: int, frames: list[Frame]) -> None:
        self._end += nbytes
        self._start = self._parse(self._buf, self._start, self._end, frames)
        if self._start == self._end and not self._exported:
            self._start = self._end = 0

    def _relocate(self) -> None:
        old = self._buf
        pending = self._end - self._start
        if self._min is None:
            size = max(self._buffer_size, self._need + _MIN_FREE)
        else:
            held = pending + _MIN_FREE
            grown = max(self._min, min(2 * len(old), self._buffer_size), held)
            size = max(grown, min(self._need + _MIN_FREE, 2 * held))
        if self._exported or size > len(old):
            self._buf = memoryview(bytearray(size))
            self._exported = False
        # one copy, no temporary: a slice assignment between byte views is a memmove, so it
        # is right also when the bytes move to the front of the same buffer (overlapping)
        self._buf[:pending] = old[self._start : self._end]
        self._start = 0
        self._end = pending

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise InvalidFrameError(
                self._failure.fault or str(self._failure), "the stream failed earlier"
            )

    def _fail(self, error: InvalidFrameError, frames: list[Frame]) -> InvalidFrameError:
        error.frames = tuple(frames)
        self._failure = error
        return error

    def _parse(self, view: memoryview, pos: int, end: int, out: list[Frame]) -> int:
        limit = self._max
        while end - pos >= HEADER_SIZE:
            (length,) = _U32.unpack_from(view, pos + _PAYLOAD_LENGTH_AT)
            if length > limit:
                raise self._fail(
                    InvalidFrameError(FrameFault.PAYLOAD_TOO_LARGE, f"{length} > {limit}"), out
                )
            try:
                header = _decode_header(view, pos)
            except InvalidFrameError as error:
                raise self._fail(error, out) from None
            total = HEADER_SIZE + length
            if end - pos < total:
                self._need = total
                return pos
            if length:
                payload: memoryview | bytes = view[pos + HEADER_SIZE : pos + total]
                if zlib.crc32(payload) != header.payload_crc:
                    raise self._fail(InvalidFrameError(FrameFault.PAYLOAD_CRC), out)
                if view is self._buf:
                    self._exported = True
            else:
                payload = _EMPTY
            out.append(Frame(header, payload))
            pos += total
        self._need = HEADER_SIZE
        return pos
