"""Raw-bytes wire tests: framing, keepalive, ingest, Acks and their ordering."""

from __future__ import annotations

import asyncio
import struct
import zlib

import pytest

from lnc_client.protocol.control import create_topic_payload, fetch_payload
from lnc_client.protocol.frame import (
    HEADER_SIZE,
    KEEPALIVE_FRAME,
    ControlCommand,
    Flag,
    build_ack_frame,
    build_control_frame,
    build_ingest_frame,
    encode_frame,
)
from lnc_client.server import LanceServer

from .conftest import load_vectors

VECTORS = load_vectors()
UNKNOWN_TOPIC = VECTORS["error_unknown_topic"]


def error(text: str) -> bytes:
    return build_control_frame(ControlCommand.ERROR_RESPONSE, text.encode())


async def create(conn, name: str) -> bytes:
    await conn.send(build_control_frame(ControlCommand.CREATE_TOPIC, create_topic_payload(name)))
    return await conn.read_frame()


async def test_keepalive_is_echoed_byte_for_byte(conn) -> None:
    await conn.send(VECTORS["keepalive"])
    assert await conn.read_frame() == VECTORS["keepalive"]


async def test_keepalive_payload_is_checked_then_ignored(conn) -> None:
    await conn.send(encode_frame(Flag.KEEPALIVE, b"xyz"))
    assert await conn.read_frame() == KEEPALIVE_FRAME


async def test_client_ack_backpressure_and_unknown_frames_are_ignored(conn) -> None:
    await conn.send(
        VECTORS["ack_batch_7"],
        VECTORS["backpressure"],
        encode_frame(Flag.NONE),
        encode_frame(Flag.ENCRYPTED),
        VECTORS["keepalive"],
    )
    assert await conn.read_frame() == VECTORS["keepalive"]
    await conn.expect_silence()


@pytest.mark.parametrize(
    "bad",
    [
        VECTORS["keepalive_with_crc32c_header"],
        b"LANX" + VECTORS["keepalive"][4:],
        VECTORS["keepalive"][:4] + b"\x02" + VECTORS["keepalive"][5:],
        VECTORS["ingest_topic1_hello"][:-1] + b"\x00",
        # payload_length 16 MiB + 1: closed before the magic is even looked at
        b"JUNK" + bytes(28) + (16 * 1024 * 1024 + 1).to_bytes(4, "little") + bytes(8),
    ],
    ids=["crc32c-header", "magic", "version", "payload-crc", "too-large"],
)
async def test_framing_fault_closes_without_reply(server: LanceServer, connect, bad: bytes) -> None:
    victim = await connect(server.port)
    bystander = await connect(server.port)
    await victim.send(bad)
    assert await victim.expect_closed() == b""
    await bystander.send(VECTORS["keepalive"])
    assert await bystander.read_frame() == VECTORS["keepalive"]
    await victim.close()
    await bystander.close()


async def test_max_payload_is_inclusive(conn) -> None:
    payload = bytes(16 * 1024 * 1024)
    await conn.send(build_ingest_frame(payload, batch_id=3, record_count=1, topic_id=0))
    assert await conn.read_frame() == build_ack_frame(3)


async def test_frames_before_a_fault_in_the_same_read_are_answered(conn) -> None:
    await conn.send(VECTORS["list_topics_request"] + VECTORS["keepalive_with_crc32c_header"])
    rest = await conn.expect_closed()
    assert rest == build_control_frame(ControlCommand.TOPIC_RESPONSE, b'{"topics":[]}')


async def test_unknown_topic_exact_text_and_connection_stays_open(conn) -> None:
    await conn.send(
        build_ingest_frame(b"\x01\x01\x00\x00\x00x", batch_id=9, record_count=1, topic_id=77)
    )
    assert await conn.read_frame() == UNKNOWN_TOPIC
    await conn.send(VECTORS["keepalive"])
    assert await conn.read_frame() == VECTORS["keepalive"]


async def test_topic_zero_is_accepted_but_not_fetchable(conn) -> None:
    await conn.send(build_ingest_frame(b"\x01\x01\x00\x00\x00x", batch_id=5, record_count=1))
    assert await conn.read_frame() == build_ack_frame(5)
    await conn.send(build_control_frame(ControlCommand.FETCH, fetch_payload(0, 0, 100)))
    assert await conn.read_frame() == error("Topic 0 not found")


async def test_zero_length_ingest_gets_no_reply(conn) -> None:
    await create(conn, "t")
    await conn.send(build_ingest_frame(b"", batch_id=4, record_count=0, topic_id=1))
    await conn.expect_silence()
    # ... but an unknown topic is still reported, that check comes first
    await conn.send(build_ingest_frame(b"", batch_id=4, record_count=0, topic_id=9))
    assert await conn.read_frame() == UNKNOWN_TOPIC


async def test_flags_zero_with_payload_is_an_ingest(conn) -> None:
    await create(conn, "t")
    await conn.send(encode_frame(Flag.COMPRESSED, b"\x01\x00\x00\x00\x00", batch_id=11, topic_id=1))
    assert await conn.read_frame() == build_ack_frame(11)


async def test_acks_in_fifo_order_after_inline_replies_of_the_same_read(conn) -> None:
    await create(conn, "t")
    ingest = [
        build_ingest_frame(b"\x01\x01\x00\x00\x00a", batch_id=i, record_count=1, topic_id=1)
        for i in (1, 2, 3)
    ]
    bad = build_ingest_frame(b"\x01\x01\x00\x00\x00a", batch_id=99, record_count=1, topic_id=42)
    await conn.send(ingest[0] + VECTORS["keepalive"] + ingest[1] + bad + ingest[2])
    frames = await conn.read_frames(5)
    assert frames == [
        VECTORS["keepalive"],
        UNKNOWN_TOPIC,
        build_ack_frame(1),
        build_ack_frame(2),
        build_ack_frame(3),
    ]


async def test_duplicate_and_zero_batch_ids_are_each_acked(conn) -> None:
    await create(conn, "t")
    frame = build_ingest_frame(b"\x01\x01\x00\x00\x00a", batch_id=0, record_count=1, topic_id=1)
    await conn.send(frame + frame)
    assert await conn.read_frames(2) == [build_ack_frame(0), build_ack_frame(0)]


async def test_pipelined_reads_keep_the_real_wire_order(server: LanceServer, connect) -> None:
    """Replies of a later read never overtake the Acks of an earlier one."""
    conn = await connect(server.port)
    await create(conn, "t")
    expected: list[bytes] = []
    for batch in range(1, 201):
        payload = b"\x01\x04\x00\x00\x00" + batch.to_bytes(4, "little")
        await conn.send(build_ingest_frame(payload, batch_id=batch, record_count=1, topic_id=1))
        expected.append(build_ack_frame(batch))
        if batch % 50 == 0:
            await conn.send(VECTORS["keepalive"])
            expected.append(VECTORS["keepalive"])
        await asyncio.sleep(0)
    got = await conn.read_frames(len(expected))
    # Acks are FIFO; a keepalive may come before Acks of its own read but never before the
    # Acks of batches sent in an earlier read, so every ack keeps its relative order.
    assert [f for f in got if f != VECTORS["keepalive"]] == [
        f for f in expected if f != VECTORS["keepalive"]
    ]
    assert got.count(VECTORS["keepalive"]) == 4
    await conn.close()


async def test_half_close_still_gets_every_ack(server: LanceServer, connect) -> None:
    conn = await connect(server.port)
    await create(conn, "t")
    frames = b"".join(
        build_ingest_frame(b"\x01\x01\x00\x00\x00z", batch_id=i, record_count=1, topic_id=1)
        for i in range(50)
    )
    await conn.send(frames)
    conn.writer.write_eof()
    rest = await conn.expect_closed()
    assert rest == b"".join(build_ack_frame(i) for i in range(50))
    await conn.close()


def test_vector_crc_is_ieee() -> None:
    assert zlib.crc32(b"123456789") == 0xCBF43926


async def test_a_fetch_answered_after_an_ack_sees_that_batch(server: LanceServer, connect) -> None:
    """The real server reads nothing more until a read's Acks are out, so a Fetch answered after
    an Ack always includes that batch; with pipelined reads a Fetch waits for earlier Acks."""
    conn = await connect(server.port)
    await create(conn, "t")
    value = bytes(2 * 1024 * 1024)
    record = b"\x01" + len(value).to_bytes(4, "little") + value
    fetch = build_control_frame(ControlCommand.FETCH, fetch_payload(1, 0, 1 << 30))
    ack_first = 0
    for batch in range(1, 7):
        await conn.send(build_ingest_frame(record, batch_id=batch, record_count=1, topic_id=1))
        await asyncio.sleep(0.002)  # a separate read, while the batch is still being written
        await conn.send(fetch)
        first, second = await conn.read_frames(2)
        if first == build_ack_frame(batch):
            ack_first += 1
            (stored,) = struct.unpack_from("<I", second, HEADER_SIZE + 8)
            assert stored == batch * len(record)
        else:
            assert second == build_ack_frame(batch)
    assert ack_first > 0
    await conn.close()


async def test_an_oversized_frame_behind_complete_ones_closes_without_their_acks(conn) -> None:
    """As real lance d562ea2 does (tests/real/test_single.py): the frames ahead of it are
    dispatched (inline replies go out) but the read's Acks never do."""
    await create(conn, "t")
    ok = build_ingest_frame(b"\x01\x01\x00\x00\x00a", batch_id=7, record_count=1, topic_id=1)
    too_large = b"LANC" + bytes(28) + (16 * 1024 * 1024 + 1).to_bytes(4, "little") + bytes(8)
    await conn.send(ok + VECTORS["keepalive"] + too_large)
    assert await conn.expect_closed() == VECTORS["keepalive"]
