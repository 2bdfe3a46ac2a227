"""TLV records: typed helpers, the batch encoder, partial-tail decoding and compressed envelopes."""

from __future__ import annotations

import array
import dataclasses
import itertools
import struct

import lz4.block
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lnc_client.errors import ProtocolError
from lnc_client.protocol.records import (
    EXTENDED_HEADER_SIZE,
    RECORD_HEADER_SIZE,
    CompressionCodec,
    RecordDialect,
    RecordSequence,
    RecordType,
    RustRecordType,
    TlvRecord,
    as_record_value,
    compress_records,
    decode_records,
    decode_stream,
    decode_window,
    encode_records,
    encode_values,
    pack_record_header,
    record_header,
)

VALUES = st.binary(max_size=64)
KEYS = st.text(max_size=20)
U64 = st.integers(0, 2**64 - 1)
ORDINARY_TYPES = st.integers(0, 0xFE).filter(lambda t: t != RecordType.LNC_COMPRESSED)

record = st.one_of(
    st.builds(TlvRecord.raw, VALUES),
    st.builds(TlvRecord.json, VALUES),
    st.builds(TlvRecord.key_value, KEYS, VALUES),
    st.builds(TlvRecord.timestamped, U64, VALUES),
    st.builds(TlvRecord.key_timestamped, KEYS, U64, VALUES),
    st.builds(TlvRecord, ORDINARY_TYPES, VALUES),
    st.builds(TlvRecord, st.just(RecordType.NULL), VALUES, st.integers(0, 0xFFFF)),
    st.just(TlvRecord.null()),
)


# --- typed helpers ------------------------------------------------------------------------


def test_helper_layouts_are_exact() -> None:
    assert TlvRecord.raw(b"hello").encode() == b"\x01\x05\x00\x00\x00hello"
    assert TlvRecord.json(b"{}").encode() == b"\x02\x02\x00\x00\x00{}"
    assert TlvRecord.json_value({"b": [1, "é"]}).value == '{"b":[1,"é"]}'.encode()
    assert TlvRecord.key_value("k1", b"v").encode() == b"\x10\x05\x00\x00\x00\x02\x00k1v"
    assert TlvRecord.timestamped(0x0102, b"d").encode() == (
        b"\x11\x09\x00\x00\x00\x02\x01\x00\x00\x00\x00\x00\x00d"
    )
    assert TlvRecord.key_timestamped(b"k", 7, b"d").encode() == (
        b"\x12\x0c\x00\x00\x00\x01\x00k\x07\x00\x00\x00\x00\x00\x00\x00d"
    )
    # 0xFF is written with the extended 7-byte header that crash recovery reads
    assert TlvRecord.null().encode() == b"\xff\x00\x00\x00\x00\x00\x00"
    assert TlvRecord(RecordType.NULL, b"ab", 0x0201).encode() == b"\xff\x01\x02\x02\x00\x00\x00ab"


@settings(max_examples=50, deadline=None)
@given(KEYS, VALUES, U64)
def test_helper_round_trips(key: str, value: bytes, ts: int) -> None:
    assert TlvRecord.key_value(key, value).as_key_value() == (key, value)
    assert TlvRecord.key_value(key.encode(), value).as_key_value() == (key, value)
    assert TlvRecord.timestamped(ts, value).as_timestamped() == (ts, value)
    assert TlvRecord.key_timestamped(key, ts, value).as_key_timestamped() == (key, ts, value)
    doc = {"key": key, "n": ts, "list": [None, True, 1.5]}
    assert TlvRecord.json_value(doc).as_json() == doc
    for rec in (
        TlvRecord.raw(value),
        TlvRecord.json(value),
        TlvRecord.key_value(key, value),
        TlvRecord.timestamped(ts, value),
        TlvRecord.key_timestamped(key, ts, value),
        TlvRecord.null(),
    ):
        wire = rec.encode()
        assert len(wire) == rec.total_size
        assert decode_stream(wire) == ([rec], len(wire))


def test_null_record_properties() -> None:
    null = TlvRecord.null()
    assert null.is_null
    assert null.total_size == EXTENDED_HEADER_SIZE
    assert not TlvRecord.raw(b"").is_null
    assert TlvRecord.raw(b"abc").total_size == RECORD_HEADER_SIZE + 3


def test_accessors_reject_the_wrong_type_or_a_short_value() -> None:
    with pytest.raises(ProtocolError):
        TlvRecord.raw(b"xx").as_key_value()
    with pytest.raises(ProtocolError):
        TlvRecord(RecordType.KEY_VALUE, b"\x05\x00ab").as_key_value()
    with pytest.raises(ProtocolError):
        TlvRecord(RecordType.KEY_VALUE, b"\x01").as_key_value()
    with pytest.raises(ProtocolError):
        TlvRecord(RecordType.KEY_VALUE, b"\x01\x00\xff").as_key_value()  # key not UTF-8
    with pytest.raises(ProtocolError):
        TlvRecord(RecordType.TIMESTAMPED, b"1234567").as_timestamped()
    with pytest.raises(ProtocolError):
        TlvRecord.raw(b"12345678").as_timestamped()
    with pytest.raises(ProtocolError):
        TlvRecord(RecordType.KEY_TIMESTAMPED, b"\x01\x00k1234567").as_key_timestamped()
    with pytest.raises(ProtocolError):
        TlvRecord.key_value("k", b"12345678").as_key_timestamped()
    with pytest.raises(ValueError, match=r"Expecting|JSON"):
        TlvRecord.json(b"{nope").as_json()


def test_encoders_reject_out_of_range_input() -> None:
    with pytest.raises(ValueError, match="byte"):
        TlvRecord(0x100, b"").encode()
    with pytest.raises(ValueError, match="byte"):
        TlvRecord(-1, b"").encode()
    with pytest.raises(ValueError, match="65535"):
        TlvRecord.key_value("k" * 65536, b"")
    with pytest.raises(ValueError, match="65535"):
        TlvRecord.key_timestamped(b"k" * 65536, 0, b"")
    with pytest.raises(ValueError, match="0xff"):
        encode_values([b"x"], RecordType.NULL)
    with pytest.raises(ValueError, match="0x100"):
        encode_values([b"x"], 0x100)


# --- batch encoder ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(VALUES, max_size=30), st.integers(0, 0xFE))
def test_encode_values_equals_encode_records(values: list[bytes], record_type: int) -> None:
    expected = encode_records(TlvRecord(record_type, v) for v in values)
    assert encode_values(values, record_type) == expected
    if record_type == RecordType.RAW_DATA:
        assert encode_values(values) == encode_records(map(TlvRecord.raw, values))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 40), st.integers(1, 50))
def test_encode_values_equal_lengths(length: int, count: int) -> None:
    values = [bytes([i % 256]) * length for i in range(count)]
    assert encode_values(values) == encode_records(map(TlvRecord.raw, values))
    records, used = decode_stream(encode_values(values))
    assert [r.value for r in records] == values
    assert used == count * (RECORD_HEADER_SIZE + length)


def test_encode_values_counts_bytes_not_items_and_refuses_non_buffers() -> None:
    ints = array.array("i", [1, 2])
    strided = memoryview(b"a-b-c")[::2]
    flat = [b"x", ints.tobytes(), b"abc"]
    assert encode_values([b"x", memoryview(ints), strided]) == encode_values(flat)
    assert encode_values([memoryview(ints), memoryview(ints)]) == encode_values([flat[1]] * 2)
    assert decode_records(encode_values([memoryview(ints)]))[0].value == ints.tobytes()
    for bad in ("text", 7, None, [1, 2]):
        with pytest.raises(TypeError, match=f"bytes-like .*not {type(bad).__name__}"):
            encode_values([b"ok", bad])  # type: ignore[list-item]
    assert as_record_value(b"b") == b"b"
    assert bytes(as_record_value(memoryview(ints))) == ints.tobytes()


def test_encode_values_accepts_other_buffers_and_empty_input() -> None:
    assert encode_values([]) == b""
    assert encode_values([bytearray(b"ab"), memoryview(b"cd")]) == encode_values([b"ab", b"cd"])
    assert encode_values([b"a", bytearray(b"bc")]) == encode_values([b"a", b"bc"])


# --- streaming decoder --------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(record, max_size=12))
def test_decode_stream_at_every_cut_returns_the_complete_prefix(records: list[TlvRecord]) -> None:
    stream = encode_records(records)
    ends = [0]
    for rec in records:
        ends.append(ends[-1] + rec.total_size)
    for cut in range(len(stream) + 1):
        decoded, used = decode_stream(stream[:cut])
        complete = max(i for i, end in enumerate(ends) if end <= cut)
        assert decoded == records[:complete]
        assert used == ends[complete]


@settings(max_examples=80, deadline=None)
@given(st.lists(record, max_size=25), st.lists(st.integers(0, 3000), max_size=10))
def test_carrying_the_tail_reassembles_any_split(records: list[TlvRecord], cuts: list[int]) -> None:
    stream = encode_records(records)
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    tail = b""
    decoded: list[TlvRecord] = []
    for start, stop in itertools.pairwise(points):
        window = tail + stream[start:stop]
        got, used = decode_stream(memoryview(window))
        decoded += got
        tail = window[used:]
    assert decoded == records
    assert tail == b""


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.lists(record, min_size=1, max_size=6)), max_size=6),
    st.lists(st.integers(0, 3000), max_size=10),
)
def test_windows_over_compressed_and_plain_batches_reassemble_every_record(
    batches: list[tuple[bool, list[TlvRecord]]], cuts: list[int]
) -> None:
    """Fuzz (issue 9): a topic of plain and LZ4-enveloped batches, fetched in random windows."""
    stream = b"".join(
        compress_records(encode_records(records)) if compressed else encode_records(records)
        for compressed, records in batches
    )
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    tail = b""
    decoded: list[TlvRecord] = []
    for start, stop in itertools.pairwise(points):
        got, used = decode_stream(tail + stream[start:stop])
        decoded += got
        tail = (tail + stream[start:stop])[used:]
    assert decoded == [r for _, records in batches for r in records]
    assert tail == b""


def _decode_one_by_one(
    stream: bytes, max_records: int | None, dialect: RecordDialect
) -> tuple[list[TlvRecord], int]:
    """A reference decoder: one header at a time, no run detection (plain records only)."""
    records: list[TlvRecord] = []
    pos = 0
    while max_records is None or len(records) < max_records:
        header = record_header(stream, pos, extended=dialect is RecordDialect.LNC)
        if header is None or pos + header[0] + header[1] > len(stream):
            break
        size, length = header
        extended = struct.unpack_from("<H", stream, pos + 1)[0] if size == 7 else 0
        records.append(TlvRecord(stream[pos], stream[pos + size : pos + size + length], extended))
        pos += size + length
    return records, pos


RUNS = st.lists(
    st.tuples(
        st.one_of(st.builds(TlvRecord, ORDINARY_TYPES, st.binary(max_size=6)), record),
        st.integers(1, 80),
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(
    RUNS,
    st.integers(0, 10_000),
    st.one_of(st.none(), st.integers(0, 200)),
    st.sampled_from(RecordDialect),
    st.booleans(),
)
def test_runs_of_equal_headers_decode_as_record_by_record(
    runs: list[tuple[TlvRecord, int]],
    cut: int,
    max_records: int | None,
    dialect: RecordDialect,
    distinct_values: bool,
) -> None:
    """The fast path for runs of equal headers (one type, one length) changes no result.

    Streams of long runs (as `encode_values` writes them), cut anywhere, with and without a
    record limit, in both dialects, against a decoder that reads one header at a time.
    """
    records = []
    for rec, count in runs:
        for index in range(count):
            value = rec.value
            if distinct_values and value:
                value = bytes([index % 256]) + value[1:]
            records.append(TlvRecord(rec.record_type, value, rec.extended_type))
    stream = encode_records(records)
    stream = stream[: cut % (len(stream) + 1)]
    expected = _decode_one_by_one(stream, max_records, dialect)
    assert (
        decode_stream(stream, max_records=max_records, dialect=dialect, decompress=False)
        == expected
    )


@settings(max_examples=120, deadline=None)
@given(
    RUNS,
    st.lists(st.tuples(st.booleans(), st.lists(record, min_size=1, max_size=4)), max_size=3),
    st.integers(0, 10_000),
    st.sampled_from(RecordDialect),
    st.data(),
)
def test_decode_window_is_decode_stream_read_lazily(
    runs: list[tuple[TlvRecord, int]],
    batches: list[tuple[bool, list[TlvRecord]]],
    cut: int,
    dialect: RecordDialect,
    data: st.DataObject,
) -> None:
    """A `RecordSequence` holds exactly the eagerly decoded records, however it is read.

    Streams of runs of equal headers, plain records and (LNC dialect) compressed envelopes,
    cut anywhere: iteration, every index (negative ones too), slices, `len`, equality.
    """
    stream = encode_records(rec for rec, count in runs for _ in range(count))
    for compressed, records in batches:
        plain = encode_records(records)
        stream += compress_records(plain) if compressed and dialect is RecordDialect.LNC else plain
    stream = stream[: cut % (len(stream) + 1)]
    eager, used = decode_stream(stream, dialect=dialect)
    lazy, lazy_used = decode_window(memoryview(stream), dialect=dialect)
    assert isinstance(lazy, RecordSequence)
    assert lazy_used == used
    assert len(lazy) == len(eager)
    assert list(lazy) == eager
    assert [lazy[i] for i in range(len(eager))] == eager
    assert [lazy[-i] for i in range(1, len(eager) + 1)] == eager[::-1]
    assert all(type(r) is TlvRecord for r in lazy)
    assert lazy == eager
    assert eager == lazy
    assert lazy != [*eager, TlvRecord.null()]
    start = data.draw(st.integers(-5, len(eager) + 5))
    stop = data.draw(st.integers(-5, len(eager) + 5))
    step = data.draw(st.sampled_from([1, 2, -1, 3]))
    assert lazy[start:stop:step] == eager[start:stop:step]
    for bad in (len(eager), -len(eager) - 1):
        with pytest.raises(IndexError):
            lazy[bad]


def test_a_record_sequence_reads_as_a_sequence_and_keeps_values_valid() -> None:
    values = [b"%03d" % i for i in range(50)]
    window = bytearray(encode_values(values) + TlvRecord.null().encode())
    records, used = decode_window(window)
    assert used == len(window)
    window[:] = bytes(len(window))  # the buffer handed in is copied: records never change
    assert len(records) == 51
    assert records[7] == TlvRecord.raw(b"007")
    assert records[-1] == TlvRecord.null()
    assert TlvRecord.raw(b"049") in records
    assert records.index(TlvRecord.raw(b"010")) == 10
    assert records.count(TlvRecord.raw(b"010")) == 1
    assert [r.value for r in reversed(records)][:2] == [b"", b"049"]
    first = list(records)
    assert [r.value for r in first[:50]] == values
    assert records != b"x" * 51
    assert records != "x"
    assert repr(decode_window(encode_values([b"a"]))[0]) == (
        "RecordSequence([TlvRecord(record_type=1, value=b'a', extended_type=0)])"
    )
    with pytest.raises(TypeError):
        hash(records)
    assert decode_window(b"")[0] == []


def test_a_uniform_run_ends_at_the_first_other_header() -> None:
    values = [b"%05d" % i for i in range(100)]
    stream = (
        encode_values(values) + encode_values([b"x" * 5], RecordType.JSON) + encode_values(values)
    )
    decoded, used = decode_stream(stream + stream[:7])
    assert used == len(stream)
    assert [r.value for r in decoded] == [*values, b"xxxxx", *values]
    assert [r.record_type for r in decoded] == [1] * 100 + [RecordType.JSON] + [1] * 100
    assert all(type(r) is TlvRecord for r in decoded)
    assert decode_stream(stream, max_records=150)[0] == decoded[:150]


def test_decode_stream_accepts_bytearray_and_memoryview_and_copies_values() -> None:
    stream = bytearray(encode_values([b"abc", b"de"]))
    for buffer in (stream, memoryview(stream)):
        records, used = decode_stream(buffer)
        assert [r.value for r in records] == [b"abc", b"de"]
        assert all(type(r.value) is bytes for r in records)
        assert used == len(stream)
    stream[5:8] = b"XYZ"
    assert records[0].value == b"abc"


def test_decode_stream_max_records() -> None:
    stream = encode_values([b"a", b"bb", b"ccc"])
    records, used = decode_stream(stream, max_records=2)
    assert [r.value for r in records] == [b"a", b"bb"]
    assert used == 2 * RECORD_HEADER_SIZE + 3
    assert decode_stream(stream, max_records=0) == ([], 0)


def test_extended_null_header_needs_all_seven_bytes() -> None:
    null = TlvRecord.null().encode() + TlvRecord.raw(b"z").encode()
    assert decode_stream(null[:5]) == ([], 0)
    assert decode_stream(null[:6]) == ([], 0)
    assert decode_stream(null[:7]) == ([TlvRecord.null()], 7)
    # The public spec's 5-byte null "ff 00000000" followed by an empty RAW record is read,
    # as crash recovery reads it, as an extended header whose length takes the next record's
    # first two bytes (0x00010000): everything after it would be cut. Hence 7-byte nulls.
    assert decode_stream(b"\xff\x00\x00\x00\x00" + b"\x01\x00\x00\x00\x00") == ([], 0)


@settings(max_examples=40, deadline=None)
@given(st.lists(record, max_size=12))
def test_record_header_walks_a_stream_record_by_record(records: list[TlvRecord]) -> None:
    stream = encode_records(records)
    position = 0
    for rec in records:
        header = rec.total_size - len(rec.value)
        assert record_header(stream, position) == (header, len(rec.value))
        for cut in range(position, position + header):
            assert record_header(memoryview(stream)[:cut], position) is None
        position += rec.total_size
    assert record_header(stream, position) is None


def test_record_header_layouts() -> None:
    assert pack_record_header(0x01, 3) == b"\x01\x03\x00\x00\x00"
    assert record_header(b"\x02\x00\x01\x00\x00") == (5, 256)
    assert record_header(b"\xff\x07\x00\x02\x00\x00\x00") == (7, 2)
    assert record_header(b"\xff\x07\x00\x02\x00\x00") is None
    assert record_header(b"..\x01\x04\x00\x00\x00", 2) == (5, 4)
    assert record_header(b"") is None


def test_decode_records_is_lenient_by_default_as_in_0_2_9() -> None:
    stream = encode_values([b"one", b"two"])
    assert [r.value for r in decode_records(stream[:-1])] == [b"one"]
    assert [r.value for r in decode_records(stream, expected_count=1)] == [b"one"]


def test_decode_records_strict() -> None:
    stream = encode_values([b"one", b"two"])
    assert [r.value for r in decode_records(stream, strict=True)] == [b"one", b"two"]
    assert len(decode_records(stream, expected_count=2, strict=True)) == 2
    with pytest.raises(ProtocolError, match="ends inside a record"):
        decode_records(stream[:-1], strict=True)
    with pytest.raises(ProtocolError, match="ends inside a record"):
        decode_records(stream + b"\x01\x00", strict=True)
    with pytest.raises(ProtocolError, match="expected 3 records, found 2"):
        decode_records(stream, expected_count=3, strict=True)
    assert decode_records(b"") == []


# --- compressed envelope ------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(record, max_size=20))
def test_compressed_envelope_round_trip(records: list[TlvRecord]) -> None:
    inner = encode_records(records)
    envelope = compress_records(inner)
    assert envelope[0] == RecordType.LNC_COMPRESSED
    (length,) = struct.unpack_from("<I", envelope, 1)
    assert length == len(envelope) - RECORD_HEADER_SIZE
    assert envelope[5] == CompressionCodec.LZ4_BLOCK
    assert struct.unpack_from("<I", envelope, 6)[0] == len(inner)
    body = envelope[10:]
    assert lz4.block.decompress(body, uncompressed_size=len(inner)) == inner
    tail = TlvRecord.raw(b"after").encode()
    assert decode_stream(envelope + tail) == (
        [*records, TlvRecord.raw(b"after")],
        len(envelope) + len(tail),
    )
    outer, used = decode_stream(envelope, decompress=False)
    assert outer == [TlvRecord(RecordType.LNC_COMPRESSED, envelope[5:])]
    assert used == len(envelope)
    assert decode_records(envelope) == records


def test_compressed_envelope_partial_is_left_for_the_next_window() -> None:
    envelope = compress_records(encode_values([b"x" * 100] * 10))
    assert decode_stream(envelope[:-1]) == ([], 0)


def _envelope(value: bytes) -> bytes:
    return TlvRecord(RecordType.LNC_COMPRESSED, value).encode()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"\x01\x00\x00", "5-byte envelope header"),
        (b"\x02" + struct.pack("<I", 3) + b"abc", "unknown compression codec"),
        (b"\x01" + struct.pack("<I", 50) + b"\xff\xff\xff\xff", "corrupt LZ4 block"),
        (b"\x01" + struct.pack("<I", 0xFFFFFFFF) + b"\x00" * 8, "claims 4294967295 bytes"),
    ],
)
def test_corrupt_envelope_raises_protocol_error(value: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_stream(_envelope(value))


def test_envelope_size_mismatch_and_inner_truncation_are_rejected() -> None:
    inner = encode_values([b"abc"])
    body = lz4.block.compress(inner, store_size=False)
    bigger = b"\x01" + struct.pack("<I", len(inner) + 5) + body
    with pytest.raises(ProtocolError, match="decompressed size"):
        decode_stream(_envelope(bigger))
    cut = inner[:-1]
    body = lz4.block.compress(cut, store_size=False)
    with pytest.raises(ProtocolError, match="ends inside a record"):
        decode_stream(_envelope(b"\x01" + struct.pack("<I", len(cut)) + body))


def test_nested_envelope_is_rejected() -> None:
    nested = compress_records(compress_records(encode_values([b"deep"])))
    with pytest.raises(ProtocolError, match="nested"):
        decode_stream(nested)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_protocol_error(data: bytes) -> None:
    records, used = decode_stream(data, decompress=False)
    assert 0 <= used <= len(data)
    assert encode_records(records) == data[:used]
    try:
        decode_stream(data)
    except ProtocolError:
        return


def test_decoded_records_are_ordinary_frozen_tlv_records() -> None:
    records, _ = decode_stream(encode_values([b"a", b"bc"]) + TlvRecord.null().encode())
    for rec in records:
        assert type(rec) is TlvRecord
        with pytest.raises(dataclasses.FrozenInstanceError):
            rec.value = b"changed"  # type: ignore[misc]
    assert records == [TlvRecord.raw(b"a"), TlvRecord.raw(b"bc"), TlvRecord.null()]
    assert hash(records[0]) == hash(TlvRecord.raw(b"a"))
    assert dataclasses.replace(records[1], value=b"x") == TlvRecord.raw(b"x")
    assert repr(records[0]) == "TlvRecord(record_type=1, value=b'a', extended_type=0)"


def rust_record(type_byte: int, value: bytes) -> bytes:
    """What the Rust client's `encode_record` writes: type, u32 LE length, value, always."""
    return bytes([type_byte]) + len(value).to_bytes(4, "little") + value


RUST_STREAM = [
    (RustRecordType.DATA, b"payload"),
    (RustRecordType.TOMBSTONE, b""),
    (RustRecordType.COMPRESSED, b"\x01\x02\x03"),
    (RustRecordType.UNKNOWN, b"after ff"),
    (0xC0, b"user defined, not an lz4 envelope"),
    (RustRecordType.DATA, b"last"),
]


def test_rust_client_records_read_with_the_rust_dialect() -> None:
    stream = b"".join(rust_record(t, v) for t, v in RUST_STREAM)
    records, used = decode_stream(stream, dialect=RecordDialect.RUST)
    assert used == len(stream)
    assert [(r.record_type, r.value) for r in records] == RUST_STREAM
    assert records[1].record_type == RustRecordType.TOMBSTONE
    # cut anywhere, the tail is left for the next window, as in the LNC dialect
    for cut in range(len(stream)):
        partial, partial_used = decode_stream(stream[:cut], dialect=RecordDialect.RUST)
        assert stream[:partial_used] == b"".join(
            rust_record(t, v) for t, v in RUST_STREAM[: len(partial)]
        )


def test_the_lnc_dialect_misreads_rust_records_that_is_why_the_option_exists() -> None:
    unknown = rust_record(RustRecordType.UNKNOWN, b"after ff") + rust_record(1, b"x")
    records, used = decode_stream(unknown)  # 0xFF read as a 7-byte header claiming ~1.7 GB
    assert (records, used) == ([], 0)
    with pytest.raises(ProtocolError):
        decode_stream(rust_record(0xC0, b"user defined"))  # read as an LZ4 envelope


def test_raw_values_are_the_same_bytes_in_both_dialects() -> None:
    """What the Rust client reads correctly from us: RAW_DATA records, uncompressed."""
    values = [b"", b"a", b"x" * 300]
    assert encode_values(values) == b"".join(rust_record(RustRecordType.DATA, v) for v in values)
