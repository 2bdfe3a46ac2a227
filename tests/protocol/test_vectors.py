"""Every frame of vectors.json is built byte for byte by our encoders and decodes back."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from lnc_client.errors import FrameFault, InvalidFrameError, TopicNotFoundError
from lnc_client.protocol import control as c
from lnc_client.protocol.frame import (
    HEADER_SIZE,
    ControlCommand,
    Flag,
    Frame,
    FrameDecoder,
    FrameType,
    LwpHeader,
    build_ack_frame,
    build_backpressure_frame,
    build_control_frame,
    build_ingest_frame,
    build_keepalive_frame,
    header_crc,
)
from lnc_client.protocol.records import TlvRecord, decode_records, encode_values

CREATED_AT = 1706918400  # the created_at inside the topic_response_create vector
HELLO_TLV = encode_values([b"hello"])


def _error(frame: Frame) -> tuple[type, str | None]:
    error = c.parse_error_response(frame.payload)
    return type(error), error.server_text


def _fetch(frame: Frame) -> tuple[int, int, int, bytes]:
    result = c.parse_fetch_response(frame.payload)
    return result.next_offset, result.bytes_returned, result.record_count, bytes(result.data)


def _nothing(frame: Frame) -> bytes:
    return bytes(frame.payload)


@dataclass(frozen=True)
class Case:
    build: Callable[[], bytes]
    frame_type: FrameType
    flags: int
    batch_id: int
    decode: Callable[[Frame], Any]
    value: Any
    topic_id: int = 0
    record_count: int = 0


CTRL = FrameType.CONTROL
CASES: dict[str, Case] = {
    "keepalive": Case(build_keepalive_frame, FrameType.KEEPALIVE, 0x20, 0, _nothing, b""),
    "ack_batch_7": Case(lambda: build_ack_frame(7), FrameType.ACK, 0x08, 7, _nothing, b""),
    "backpressure": Case(build_backpressure_frame, FrameType.BACKPRESSURE, 0x10, 0, _nothing, b""),
    "ingest_topic1_hello": Case(
        lambda: build_ingest_frame(HELLO_TLV, 1, 1, 1),
        FrameType.INGEST,
        0x04,
        1,
        lambda f: decode_records(bytes(f.payload), expected_count=1, strict=True),
        [TlvRecord.raw(b"hello")],
        topic_id=1,
        record_count=1,
    ),
    "list_topics_request": Case(
        lambda: build_control_frame(ControlCommand.LIST_TOPICS), CTRL, 0x40, 0x03, _nothing, b""
    ),
    "create_topic_request": Case(
        lambda: build_control_frame(
            ControlCommand.CREATE_TOPIC, c.create_topic_payload("my-events")
        ),
        CTRL,
        0x40,
        0x01,
        lambda f: c.parse_create_topic_request(f.payload),
        "my-events",
    ),
    "cluster_status_request": Case(
        lambda: build_control_frame(ControlCommand.GET_CLUSTER_STATUS),
        CTRL,
        0x40,
        0x07,
        _nothing,
        b"",
    ),
    "fetch_request": Case(
        lambda: build_control_frame(ControlCommand.FETCH, c.fetch_payload(1, 0, 65536)),
        CTRL,
        0x40,
        0x10,
        lambda f: c.parse_fetch_request(f.payload),
        c.FetchRequest(1, 0, 65536),
    ),
    "fetch_response_hello": Case(
        lambda: build_control_frame(
            ControlCommand.FETCH_RESPONSE, b"".join(c.encode_fetch_response(10, HELLO_TLV))
        ),
        CTRL,
        0x40,
        0x11,
        _fetch,
        (10, 10, 1, HELLO_TLV),
    ),
    "fetch_tail_request": Case(
        lambda: build_control_frame(ControlCommand.FETCH, c.fetch_payload(1, c.TAIL_OFFSET, 1)),
        CTRL,
        0x40,
        0x10,
        lambda f: c.parse_fetch_request(f.payload),
        c.FetchRequest(1, 2**64 - 1, 1),
    ),
    "catching_up_0": Case(
        lambda: build_control_frame(ControlCommand.CATCHING_UP, c.encode_catching_up(0)),
        CTRL,
        0x40,
        0x12,
        lambda f: c.parse_catching_up(f.payload),
        0,
    ),
    "error_unknown_topic": Case(
        lambda: build_control_frame(
            ControlCommand.ERROR_RESPONSE, c.encode_error_response("Unknown topic")
        ),
        CTRL,
        0x40,
        0xFF,
        _error,
        (TopicNotFoundError, "Unknown topic"),
    ),
    "topic_response_create": Case(
        lambda: build_control_frame(
            ControlCommand.TOPIC_RESPONSE,
            c.topic_json(c.TopicInfo(1, "my-events", created_at=CREATED_AT)),
        ),
        CTRL,
        0x40,
        0x80,
        lambda f: c.parse_topic_response(f.payload),
        c.TopicInfo(1, "my-events", created_at=CREATED_AT, topic_epoch=1),
    ),
    "subscribe_ack": Case(
        lambda: build_control_frame(ControlCommand.SUBSCRIBE_ACK, c.encode_consumer_offset(42, 0)),
        CTRL,
        0x40,
        0x23,
        lambda f: c.parse_subscribe_ack(f.payload),
        c.SubscribeAck(42, 0),
    ),
    "commit_ack": Case(
        lambda: build_control_frame(ControlCommand.COMMIT_ACK, c.encode_consumer_offset(42, 10)),
        CTRL,
        0x40,
        0x24,
        lambda f: c.parse_commit_ack(f.payload),
        c.CommitAck(42, 10),
    ),
    "unsubscribe_reply": Case(lambda: build_ack_frame(42), FrameType.ACK, 0x08, 42, _nothing, b""),
    "authenticate_ok": Case(
        lambda: build_control_frame(
            ControlCommand.AUTHENTICATE_RESPONSE,
            c.encode_auth_response(c.AuthResult(True, "Authenticated")),
        ),
        CTRL,
        0x40,
        0x09,
        lambda f: c.parse_auth_response(f.payload),
        c.AuthResult(True, "Authenticated"),
    ),
    "set_retention_request": Case(
        lambda: build_control_frame(
            ControlCommand.SET_RETENTION, c.set_retention_payload(1, 86400, 1073741824)
        ),
        CTRL,
        0x40,
        0x05,
        lambda f: c.parse_set_retention_request(f.payload),
        c.SetRetentionRequest(1, 86400, 1073741824),
    ),
    "create_topic_with_retention_request": Case(
        lambda: build_control_frame(
            ControlCommand.CREATE_TOPIC_WITH_RETENTION,
            c.create_topic_with_retention_payload("events", 86400, 0),
        ),
        CTRL,
        0x40,
        0x06,
        lambda f: c.parse_create_topic_with_retention_request(f.payload),
        c.CreateTopicWithRetentionRequest("events", 86400, 0),
    ),
}


def test_every_vector_has_a_case(frame_vectors: dict[str, bytes]) -> None:
    assert set(CASES) == set(frame_vectors)


def test_vector_is_built_byte_for_byte(vector_name: str, frame_vectors: dict[str, bytes]) -> None:
    assert CASES[vector_name].build() == frame_vectors[vector_name]


def test_vector_decodes_to_expected_fields(
    vector_name: str, frame_vectors: dict[str, bytes]
) -> None:
    case = CASES[vector_name]
    data = frame_vectors[vector_name]
    (frame,) = FrameDecoder().feed(data)
    header = frame.header
    assert header == LwpHeader.decode(data)
    assert frame.frame_type is case.frame_type
    assert header.flags == case.flags
    assert header.batch_id == case.batch_id
    assert header.topic_id == case.topic_id
    assert header.record_count == case.record_count
    assert header.timestamp_ns == 0
    assert header.payload_length == len(data) - HEADER_SIZE
    assert header.header_crc == header_crc(case.flags)
    if header.payload_length:
        assert header.payload_crc == zlib.crc32(data[HEADER_SIZE:])
    else:
        assert header.payload_crc == 0
    assert case.decode(frame) == case.value
    assert frame.encode() == data
    assert header.encode() == data[:HEADER_SIZE]


def test_control_vectors_carry_their_command(frame_vectors: dict[str, bytes]) -> None:
    for name, case in CASES.items():
        (frame,) = FrameDecoder().feed(frame_vectors[name])
        if case.frame_type is CTRL:
            assert frame.header.is_control
            assert ControlCommand(frame.command) == case.batch_id


def test_all_vectors_in_one_stream_one_byte_at_a_time(frame_vectors: dict[str, bytes]) -> None:
    stream = b"".join(frame_vectors.values())
    decoder = FrameDecoder(buffer_size=HEADER_SIZE)
    frames = [f for i in range(len(stream)) for f in decoder.feed(stream[i : i + 1])]
    assert [f.encode() for f in frames] == list(frame_vectors.values())
    assert decoder.buffered == 0


def test_negative_vector_is_rejected(negative_vectors: dict[str, bytes]) -> None:
    data = negative_vectors["keepalive_with_crc32c_header"]
    with pytest.raises(InvalidFrameError) as info:
        FrameDecoder().feed(data)
    assert info.value.fault is FrameFault.HEADER_CRC
    with pytest.raises(InvalidFrameError) as info:
        LwpHeader.decode(data)
    assert info.value.fault is FrameFault.HEADER_CRC


def test_crc_known_answers(vectors: dict[str, Any]) -> None:
    for answer in vectors["crc_known_answers"]:
        assert zlib.crc32(bytes.fromhex(answer["input_hex"])) == int(answer["crc32"], 16)


def test_header_crc_by_flags(vectors: dict[str, Any]) -> None:
    table = vectors["header_crc_by_flags"]
    assert len(table) == 8
    for flags_text, crc_hex in table.items():
        flags = int(flags_text, 16)
        expected = int(crc_hex, 16)
        assert header_crc(flags) == expected
        assert zlib.crc32(b"LANC" + bytes((1, flags, 0, 0))) == expected
        wire = LwpHeader(flags=flags).encode()
        assert wire[8:12] == expected.to_bytes(4, "little")


def test_header_crc_covers_reserved_bytes() -> None:
    for reserved in (1, 0x100, 0xFFFF):
        prefix = b"LANC" + bytes((1, Flag.CONTROL)) + reserved.to_bytes(2, "little")
        assert header_crc(Flag.CONTROL, reserved) == zlib.crc32(prefix)
        wire = LwpHeader(flags=Flag.CONTROL, reserved=reserved).encode()
        assert LwpHeader.decode(wire).reserved == reserved
