"""Header encode/decode, classification precedence and the incremental FrameDecoder."""

from __future__ import annotations

import contextlib
import itertools
import random
import struct
import zlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lnc_client.errors import FrameFault, InvalidFrameError
from lnc_client.protocol.frame import (
    HEADER_SIZE,
    KEEPALIVE_FRAME,
    MAX_PAYLOAD_SIZE,
    ControlCommand,
    Flag,
    Frame,
    FrameDecoder,
    FrameType,
    LwpHeader,
    build_ack_frame,
    build_control_frame,
    build_ingest_frame,
    classify,
    encode_frame,
    encode_header,
)

U8 = st.integers(0, 0xFF)
U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFFFFFF)
U64 = st.integers(0, 2**64 - 1)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- header -------------------------------------------------------------------------------


@FAST
@given(U8, U16, U64, U64, U32, U32, U32, U32)
def test_header_round_trip(
    flags: int,
    reserved: int,
    batch_id: int,
    ts: int,
    count: int,
    length: int,
    payload_crc: int,
    topic: int,
) -> None:
    fields = (batch_id, ts, count, length, payload_crc, topic)
    header = LwpHeader(1, flags, 0, *fields, reserved)
    wire = header.encode()
    assert len(wire) == HEADER_SIZE
    assert wire[:8] == b"LANC" + bytes((1, flags)) + reserved.to_bytes(2, "little")
    assert wire[8:12] == zlib.crc32(wire[:8]).to_bytes(4, "little")
    assert struct.unpack("<QQIIII", wire[12:]) == fields
    decoded = LwpHeader.decode(wire + b"trailing bytes are not read")
    assert decoded == LwpHeader(1, flags, zlib.crc32(wire[:8]), *fields, reserved)
    assert decoded.command == batch_id & 0xFF
    if reserved == 0:
        keywords = ("batch_id", "timestamp_ns", "record_count", "payload_length", "payload_crc")
        assert (
            encode_header(flags, topic_id=topic, **dict(zip(keywords, fields[:5], strict=True)))
            == wire
        )


def test_header_decode_faults_in_server_order() -> None:
    good = build_control_frame(ControlCommand.LIST_TOPICS)
    cases = {
        FrameFault.TRUNCATED: good[:43],
        FrameFault.BAD_MAGIC: b"LANX" + good[4:],
        FrameFault.BAD_VERSION: good[:4] + b"\x02" + good[5:],
        FrameFault.HEADER_CRC: good[:5] + b"\x20" + good[6:],
    }
    for fault, data in cases.items():
        with pytest.raises(InvalidFrameError) as info:
            LwpHeader.decode(data)
        assert info.value.fault is fault
    # magic is checked before version, version before the CRC
    with pytest.raises(InvalidFrameError) as info:
        LwpHeader.decode(b"XXXX\x09" + good[5:8] + b"\0\0\0\0" + good[12:])
    assert info.value.fault is FrameFault.BAD_MAGIC
    with pytest.raises(InvalidFrameError) as info:
        LwpHeader.decode(good[:4] + b"\x09" + good[5:8] + b"\0\0\0\0" + good[12:])
    assert info.value.fault is FrameFault.BAD_VERSION


def test_flag_and_command_enums() -> None:
    members = [int(f) for f in Flag.__members__.values()]
    assert members == [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40]
    assert Flag.BATCH_MODE | Flag.COMPRESSED == 0x05
    for code in (0x07, 0x08, 0x09, 0x12, 0x81, 0x20, 0x21, 0x22, 0x23, 0x24, 0x80, 0xFF):
        assert ControlCommand(code).value == code
    assert ControlCommand.GET_CLUSTER_STATUS == 0x07
    assert ControlCommand.CLUSTER_STATUS_RESPONSE == 0x81


def test_ingest_frame_flags_and_fields() -> None:
    frame = build_ingest_frame(b"xyz", 9, 3, 4, timestamp_ns=77, compressed=True)
    header = LwpHeader.decode(frame)
    assert header.flags == Flag.BATCH_MODE | Flag.COMPRESSED
    assert (header.batch_id, header.record_count, header.topic_id) == (9, 3, 4)
    assert (header.timestamp_ns, header.payload_length) == (77, 3)
    assert header.payload_crc == zlib.crc32(b"xyz")
    assert header.is_batch
    assert header.is_compressed
    assert not header.is_control
    assert frame[HEADER_SIZE:] == b"xyz"


def test_control_frame_command_is_low_byte_of_batch_id() -> None:
    (frame,) = FrameDecoder().feed(encode_frame(Flag.CONTROL, batch_id=0x101))
    assert frame.frame_type is FrameType.CONTROL
    assert frame.command == 0x01
    assert frame.header.command == 0x01


# --- classification -----------------------------------------------------------------------

# PROTOCOL.md 1.5, as a table: (order, rule on (flags, payload_length), type); first match wins.
PRECEDENCE: list[tuple[int, Callable[[int, int], bool], FrameType]] = [
    (1, lambda f, n: bool(f & 0x40), FrameType.CONTROL),
    (2, lambda f, n: bool(f & 0x20), FrameType.KEEPALIVE),
    (3, lambda f, n: bool(f & 0x08), FrameType.ACK),
    (4, lambda f, n: bool(f & 0x10), FrameType.BACKPRESSURE),
    (5, lambda f, n: bool(f & 0x04) or n > 0, FrameType.INGEST),
    (6, lambda f, n: True, FrameType.UNKNOWN),
]


def oracle(flags: int, payload_length: int) -> FrameType:
    for _order, rule, frame_type in sorted(PRECEDENCE, key=lambda row: row[0]):
        if rule(flags, payload_length):
            return frame_type
    raise AssertionError("rule 6 always matches")


@pytest.mark.parametrize("payload_length", [0, 1, 0xFFFFFFFF])
def test_classify_matches_precedence_table_for_every_flags_byte(payload_length: int) -> None:
    for flags in range(256):
        expected = oracle(flags, payload_length)
        assert classify(flags, payload_length) is expected, hex(flags)
        header = LwpHeader(flags=flags, payload_length=payload_length)
        assert header.frame_type is expected
        assert header.is_control == (expected is FrameType.CONTROL)
        assert header.is_keepalive == (expected is FrameType.KEEPALIVE)
        assert header.is_ack == (expected is FrameType.ACK)
        assert header.is_backpressure == (expected is FrameType.BACKPRESSURE)
        assert header.is_batch == (expected is FrameType.INGEST)


def test_classify_spot_checks_from_protocol() -> None:
    assert classify(0x00, 10) is FrameType.INGEST
    assert classify(0x01, 10) is FrameType.INGEST
    assert classify(0x02, 10) is FrameType.INGEST
    assert classify(0x00, 0) is FrameType.UNKNOWN
    assert classify(0x80, 0) is FrameType.UNKNOWN
    assert classify(0x04, 0) is FrameType.INGEST
    assert classify(0x7F, 0) is FrameType.CONTROL
    assert classify(0x38, 5) is FrameType.KEEPALIVE
    assert classify(0x18, 0) is FrameType.ACK


# --- decoder helpers ----------------------------------------------------------------------


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def feed_chunks(decoder: FrameDecoder, chunks: list[bytes], mode: str) -> list[Frame]:
    """Feed chunks as bytes, bytearray, memoryview, or through get_buffer/buffer_updated.

    The get_buffer path scribbles over the whole returned buffer before copying the real bytes
    in: a buffer that overlapped a payload handed out earlier would corrupt that payload.
    """
    frames: list[Frame] = []
    for chunk in chunks:
        if mode == "bytes":
            frames += decoder.feed(bytes(chunk))
        elif mode == "bytearray":
            frames += decoder.feed(bytearray(chunk))
        elif mode == "memoryview":
            frames += decoder.feed(memoryview(bytearray(b"\0" + chunk))[1:])
        else:
            view = memoryview(chunk)
            while view:
                space = decoder.get_buffer(len(view))
                assert len(space) > 0
                space[:] = b"\xaa" * len(space)
                n = min(len(space), len(view))
                space[:n] = view[:n]
                frames += decoder.buffer_updated(n)
                view = view[n:]
    return frames


MODES = ["bytes", "bytearray", "memoryview", "buffer"]

frame_bytes = st.builds(
    lambda flags, batch_id, ts, count, topic, payload: encode_frame(
        flags, payload, batch_id=batch_id, timestamp_ns=ts, record_count=count, topic_id=topic
    ),
    U8,
    U64,
    U64,
    U32,
    U32,
    st.binary(max_size=300),
)


def as_tuples(frames: list[Frame]) -> list[tuple[LwpHeader, bytes]]:
    return [(f.header, bytes(f.payload)) for f in frames]


def expected_tuples(encoded: list[bytes]) -> list[tuple[LwpHeader, bytes]]:
    return [(LwpHeader.decode(e), e[HEADER_SIZE:]) for e in encoded]


# --- decoder: chunking --------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    st.lists(frame_bytes, max_size=12),
    st.lists(st.integers(0, 10_000), max_size=30),
    st.sampled_from(MODES),
    st.sampled_from([HEADER_SIZE, 64, 300, 256 * 1024]),
)
def test_random_chunkings_give_identical_frames(
    encoded: list[bytes], cuts: list[int], mode: str, buffer_size: int
) -> None:
    stream = b"".join(encoded)
    for minimum in (None, HEADER_SIZE, min(8192, buffer_size)):  # eager, and grow-with-data
        decoder = FrameDecoder(buffer_size=buffer_size, min_buffer_size=minimum)
        frames = feed_chunks(decoder, split(stream, cuts), mode)
        assert as_tuples(frames) == expected_tuples(encoded)
        assert [f.encode() for f in frames] == encoded
        assert decoder.buffered == 0


@given(st.integers(HEADER_SIZE, 16 * 1024 * 1024), st.lists(st.integers(1, 70_000), max_size=12))
def test_grow_with_data_pins_memory_in_proportion_to_bytes_received(
    declared: int, reads: list[int]
) -> None:
    """A header may declare 16 MiB; the buffer follows what actually arrived (issue 9.11)."""
    decoder = FrameDecoder(buffer_size=256 * 1024, min_buffer_size=8192)
    received = 0
    space = decoder.get_buffer()
    space[:HEADER_SIZE] = encode_header(Flag.BATCH_MODE, batch_id=1, payload_length=declared)
    assert decoder.buffer_updated(HEADER_SIZE) == []
    received = HEADER_SIZE
    for size in reads:
        space = decoder.get_buffer()
        take = min(size, len(space), HEADER_SIZE + declared - received - 1)
        if take <= 0:
            break
        assert decoder.buffer_updated(take) == []
        received += take
        assert decoder.capacity <= max(256 * 1024, 4 * received + 16384)
    decoder.shrink()  # a frame is in progress: nothing is dropped
    assert decoder.buffered == received


def test_shrink_gives_the_buffer_back_only_when_nothing_is_buffered() -> None:
    decoder = FrameDecoder(buffer_size=256 * 1024, min_buffer_size=8192)
    assert decoder.capacity == 0  # nothing allocated before the first read
    space = decoder.get_buffer()
    assert len(space) == 8192
    space[: len(KEEPALIVE_FRAME)] = KEEPALIVE_FRAME
    assert len(decoder.buffer_updated(len(KEEPALIVE_FRAME))) == 1
    decoder.shrink()
    assert decoder.capacity == 0


@pytest.mark.parametrize("mode", MODES)
def test_one_byte_at_a_time(mode: str) -> None:
    encoded = [
        build_ingest_frame(bytes(range(200)), 1, 1, 1),
        KEEPALIVE_FRAME,
        build_control_frame(ControlCommand.FETCH, b"\x01" * 16),
    ]
    stream = b"".join(encoded)
    decoder = FrameDecoder(buffer_size=HEADER_SIZE)
    frames = feed_chunks(decoder, [stream[i : i + 1] for i in range(len(stream))], mode)
    assert [f.encode() for f in frames] == encoded


@pytest.mark.parametrize("mode", MODES)
def test_long_stream_payloads_stay_valid_after_later_feeds(mode: str) -> None:
    rng = random.Random(1234)
    encoded = [
        encode_frame(Flag.BATCH_MODE, rng.randbytes(rng.choice([0, 1, 7, 100, 3000])), batch_id=i)
        for i in range(1500)
    ]
    stream = b"".join(encoded)
    cuts = [rng.randrange(len(stream)) for _ in range(600)]
    decoder = FrameDecoder(buffer_size=4096)
    frames = feed_chunks(decoder, split(stream, cuts), mode)
    # every payload is compared only now, after the whole stream went through the decoder
    assert as_tuples(frames) == expected_tuples(encoded)


@pytest.mark.parametrize("mode", ["bytes", "buffer"])
def test_large_frames_across_many_chunks(mode: str) -> None:
    rng = random.Random(7)
    payloads = [rng.randbytes(3 * 1024 * 1024 + k) for k in (0, 1, 12345)]
    encoded = [encode_frame(Flag.BATCH_MODE, p, batch_id=i) for i, p in enumerate(payloads)]
    stream = b"".join(encoded)
    chunks = [stream[i : i + 65536 + 3] for i in range(0, len(stream), 65536 + 3)]
    decoder = FrameDecoder()
    frames = feed_chunks(decoder, chunks, mode)
    assert [f.header.batch_id for f in frames] == [0, 1, 2]
    assert [bytes(f.payload) for f in frames] == payloads


def test_whole_bytes_chunk_is_decoded_in_place() -> None:
    stream = build_ingest_frame(b"abc", 1, 1) + build_ingest_frame(b"defg", 2, 1)
    frames = FrameDecoder().feed(stream)
    payload = frames[1].payload
    assert isinstance(payload, memoryview)
    assert payload.obj is stream
    assert bytes(payload) == b"defg"


def test_empty_payload_is_empty_bytes() -> None:
    (frame,) = FrameDecoder().feed(build_ack_frame(3))
    assert frame.payload == b""
    assert frame.header.batch_id == 3


def test_buffered_counts_incomplete_bytes() -> None:
    frame = build_ingest_frame(b"x" * 100, 1, 1)
    decoder = FrameDecoder()
    assert decoder.buffered == 0
    assert decoder.feed(frame[:10]) == []
    assert decoder.buffered == 10
    assert decoder.feed(frame[10:60]) == []
    assert decoder.buffered == 60
    (done,) = decoder.feed(frame[60:] + KEEPALIVE_FRAME[:5])
    assert bytes(done.payload) == b"x" * 100
    assert decoder.buffered == 5
    (keepalive,) = decoder.feed(KEEPALIVE_FRAME[5:])
    assert keepalive.frame_type is FrameType.KEEPALIVE
    assert decoder.buffered == 0


def test_feed_empty_chunk_returns_nothing() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"") == []
    assert decoder.buffer_updated(0) == []
    assert decoder.buffered == 0


def test_constructor_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="max_payload_size"):
        FrameDecoder(max_payload_size=-1)
    with pytest.raises(ValueError, match="buffer_size"):
        FrameDecoder(buffer_size=43)


# --- decoder: faults ----------------------------------------------------------------------


def fault_of(data: bytes, **kwargs: int) -> FrameFault:
    with pytest.raises(InvalidFrameError) as info:
        FrameDecoder(**kwargs).feed(data)
    return info.value.fault


def test_fault_kinds() -> None:
    good = build_ingest_frame(b"hello", 1, 1, 1)
    assert fault_of(b"LANX" + good[4:]) is FrameFault.BAD_MAGIC
    assert fault_of(good[:4] + b"\x00" + good[5:]) is FrameFault.BAD_VERSION
    assert fault_of(good[:6] + b"\x01" + good[7:]) is FrameFault.HEADER_CRC
    assert fault_of(good[:-1] + b"!") is FrameFault.PAYLOAD_CRC
    assert fault_of(good[:36] + b"\0\0\0\0" + good[40:]) is FrameFault.PAYLOAD_CRC


def test_payload_crc_is_ignored_without_payload() -> None:
    header = bytearray(KEEPALIVE_FRAME)
    header[36:40] = b"\xde\xad\xbe\xef"
    (frame,) = FrameDecoder().feed(bytes(header))
    assert frame.header.payload_crc == 0xEFBEADDE


def test_size_limit_is_checked_before_magic() -> None:
    too_large = b"JUNK" + bytes(28) + struct.pack("<I", MAX_PAYLOAD_SIZE + 1) + bytes(8)
    assert fault_of(too_large) is FrameFault.PAYLOAD_TOO_LARGE
    within = b"JUNK" + bytes(28) + struct.pack("<I", MAX_PAYLOAD_SIZE) + bytes(8)
    assert fault_of(within) is FrameFault.BAD_MAGIC


def test_size_limit_is_inclusive() -> None:
    assert len(FrameDecoder(max_payload_size=100).feed(encode_frame(4, b"x" * 100))) == 1
    assert fault_of(encode_frame(4, b"x" * 101), max_payload_size=100) is (
        FrameFault.PAYLOAD_TOO_LARGE
    )
    assert len(FrameDecoder(max_payload_size=0).feed(KEEPALIVE_FRAME)) == 1
    assert fault_of(encode_frame(4, b"x"), max_payload_size=0) is FrameFault.PAYLOAD_TOO_LARGE


def test_default_limit_is_16_mib_and_checked_on_the_header_alone() -> None:
    at_limit = encode_header(Flag.BATCH_MODE, payload_length=MAX_PAYLOAD_SIZE)
    decoder = FrameDecoder()
    assert decoder.feed(at_limit) == []
    assert decoder.buffered == HEADER_SIZE
    over = encode_header(Flag.BATCH_MODE, payload_length=MAX_PAYLOAD_SIZE + 1)
    assert fault_of(over) is FrameFault.PAYLOAD_TOO_LARGE


@pytest.mark.parametrize("mode", MODES)
def test_after_a_fault_the_decoder_keeps_raising(mode: str) -> None:
    decoder = FrameDecoder()
    good = [build_ack_frame(1), build_ingest_frame(b"ok", 2, 1)]
    bad = b"LANX" + KEEPALIVE_FRAME[4:]
    with pytest.raises(InvalidFrameError) as info:
        feed_chunks(decoder, [b"".join(good) + bad + KEEPALIVE_FRAME], mode)
    assert info.value.fault is FrameFault.BAD_MAGIC
    # frames decoded in the same call before the fault are kept on the error
    assert [f.encode() for f in info.value.frames] == good
    for attempt in (
        lambda: decoder.feed(KEEPALIVE_FRAME),
        lambda: decoder.feed(bytearray(KEEPALIVE_FRAME)),
        lambda: decoder.get_buffer(),
        lambda: decoder.buffer_updated(0),
    ):
        with pytest.raises(InvalidFrameError) as again:
            attempt()
        assert again.value.fault is FrameFault.BAD_MAGIC
        assert again.value.frames == ()


def test_frames_before_a_fault_across_chunks_of_one_feed() -> None:
    good = [encode_frame(Flag.BATCH_MODE, b"p" * 500, batch_id=i) for i in range(5)]
    bad = encode_frame(Flag.BATCH_MODE, b"q" * 10)[:-1] + b"!"
    decoder = FrameDecoder(buffer_size=HEADER_SIZE)
    decoder.feed(good[0][:7])
    with pytest.raises(InvalidFrameError) as info:
        decoder.feed(good[0][7:] + b"".join(good[1:]) + bad)
    assert info.value.fault is FrameFault.PAYLOAD_CRC
    assert [f.encode() for f in info.value.frames] == good


def outcome(decoder: FrameDecoder, data: bytes) -> tuple[FrameFault | None, list[Frame]]:
    """Feed `data`; return the fault (or None) and the frames decoded before it."""
    try:
        return None, decoder.feed(data)
    except InvalidFrameError as error:
        return error.fault, list(error.frames)


LENGTH_FAULTS = {FrameFault.PAYLOAD_TOO_LARGE, FrameFault.PAYLOAD_CRC, FrameFault.BAD_MAGIC}


def test_corruption_at_every_position() -> None:
    """Flip each byte of a two-frame stream; each field fails in the way the spec says."""
    encoded = [
        build_ingest_frame(b"0123456789", 5, 1, 1),
        build_control_frame(ControlCommand.FETCH, b"\x02" * 16),
    ]
    stream = b"".join(encoded)
    starts = [0, len(encoded[0])]
    for position in range(len(stream)):
        index = 0 if position < starts[1] else 1
        offset = position - starts[index]
        expected = {
            **dict.fromkeys(range(4), FrameFault.BAD_MAGIC),
            4: FrameFault.BAD_VERSION,
            **dict.fromkeys(range(5, 12), FrameFault.HEADER_CRC),
            **dict.fromkeys(range(36, len(encoded[index])), FrameFault.PAYLOAD_CRC),
        }
        expected |= dict.fromkeys([*range(12, 32), *range(40, 44)])  # covered by no CRC
        for flip in (0x01, 0x80, 0xFF):
            data = bytearray(stream)
            data[position] ^= flip
            decoder = FrameDecoder()
            fault, frames = outcome(decoder, bytes(data))
            if fault is not None:
                assert len(frames) == index
                if offset in expected:
                    assert fault is expected[offset], (position, flip)
                else:
                    # payload_length: too large, or the payload now ends elsewhere
                    assert 32 <= offset < 36
                    assert fault in LENGTH_FAULTS, (position, flip)
            elif offset in expected:
                # batch_id, timestamp, record_count and topic_id are covered by no CRC
                assert expected[offset] is None, (position, flip)
                assert len(frames) == 2
            else:
                # a changed payload_length: the decoder waits for bytes that never come
                assert 32 <= offset < 36
                assert decoder.buffered > 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=8))
def test_random_bytes_raise_only_invalid_frame_error(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder(max_payload_size=1000)
    with contextlib.suppress(InvalidFrameError):
        feed_chunks(decoder, split(data, cuts), "bytes")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(frame_bytes, min_size=1, max_size=4),
    st.data(),
    st.sampled_from(MODES),
)
def test_corrupted_streams_raise_only_invalid_frame_error(
    encoded: list[bytes], data: st.DataObject, mode: str
) -> None:
    stream = bytearray(b"".join(encoded))
    for _ in range(data.draw(st.integers(1, 4))):
        stream[data.draw(st.integers(0, len(stream) - 1))] = data.draw(U8)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=6))
    decoder = FrameDecoder(max_payload_size=2000)
    try:
        frames = feed_chunks(decoder, split(bytes(stream), cuts), mode)
    except InvalidFrameError:
        return
    for frame in frames:
        assert zlib.crc32(frame.payload) == frame.header.payload_crc or not frame.payload


@settings(max_examples=60, deadline=None)
@given(st.lists(frame_bytes, min_size=1, max_size=5), st.data(), st.sampled_from(MODES))
def test_truncated_stream_returns_the_complete_prefix(
    encoded: list[bytes], data: st.DataObject, mode: str
) -> None:
    stream = b"".join(encoded)
    cut = data.draw(st.integers(0, len(stream)))
    decoder = FrameDecoder()
    frames = feed_chunks(decoder, split(stream[:cut], [cut // 2]), mode)
    ends = [sum(map(len, encoded[: i + 1])) for i in range(len(encoded))]
    complete = [e for e, end in zip(encoded, ends, strict=True) if end <= cut]
    assert [f.encode() for f in frames] == complete
    assert decoder.buffered == cut - sum(map(len, complete))
