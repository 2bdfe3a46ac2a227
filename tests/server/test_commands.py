"""Every control command: response code, exact JSON and exact error texts (PROTOCOL.md §4-6)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from lnc_client.protocol.control import (
    create_topic_payload,
    create_topic_with_retention_payload,
    set_retention_payload,
    subscribe_payload,
    topic_id_payload,
)
from lnc_client.protocol.frame import (
    HEADER_SIZE,
    ControlCommand,
    Flag,
    build_ack_frame,
    build_control_frame,
    encode_frame,
)
from lnc_client.server import LanceServer, ServerConfig

from .conftest import RawConn

C = ControlCommand


def err(text: str) -> bytes:
    return build_control_frame(C.ERROR_RESPONSE, text.encode())


async def make_topic(conn: RawConn, name: str) -> dict[str, object]:
    frame = await conn.ask(C.CREATE_TOPIC, create_topic_payload(name))
    assert frame[12] == C.TOPIC_RESPONSE
    return json.loads(frame[HEADER_SIZE:])


INVALID_NAME = (
    "Invalid data: Topic name '{}' contains invalid characters. Only alphanumeric characters "
    "(a-z, A-Z, 0-9) and dashes (-) are allowed"
)


async def test_create_topic_errors(conn: RawConn) -> None:
    assert await conn.ask(C.CREATE_TOPIC) == err("Topic name required")
    assert await conn.ask(C.CREATE_TOPIC, b"a b") == err(INVALID_NAME.format("a b"))
    assert await conn.ask(C.CREATE_TOPIC, b"\xff") == err(INVALID_NAME.format("\ufffd"))
    first = await make_topic(conn, "Orders-1")
    assert first["id"] == 1
    assert await conn.ask(C.CREATE_TOPIC, b"Orders-1") == err("Topic 'Orders-1' already exists")
    # a failed validation does not use up an id
    assert (await make_topic(conn, "x"))["id"] == 2


async def test_create_topic_with_retention_errors(conn: RawConn) -> None:
    assert await conn.ask(C.CREATE_TOPIC_WITH_RETENTION, bytes(17)) == err(
        "Invalid create topic payload"
    )
    too_long = struct.pack("<H", 5) + b"ab" + bytes(16)
    assert await conn.ask(C.CREATE_TOPIC_WITH_RETENTION, too_long) == err("Invalid payload length")
    assert await conn.ask(C.CREATE_TOPIC_WITH_RETENTION, bytes(18)) == err(
        "Invalid data: Topic name must not be empty"
    )
    payload = create_topic_with_retention_payload("r", 0, 0)
    assert (await conn.ask(C.CREATE_TOPIC_WITH_RETENTION, payload))[12] == C.TOPIC_RESPONSE
    assert await conn.ask(C.CREATE_TOPIC_WITH_RETENTION, payload) == err("Topic 'r' already exists")


async def test_get_and_delete_topic(conn: RawConn) -> None:
    topic = await make_topic(conn, "g")
    got = await conn.ask(C.GET_TOPIC, topic_id_payload(1))
    assert got == build_control_frame(
        C.TOPIC_RESPONSE,
        b'{"created_at":%d,"id":1,"name":"g","topic_epoch":1}' % topic["created_at"],
    )
    assert await conn.ask(C.GET_TOPIC, topic_id_payload(9)) == err("Topic not found")
    assert await conn.ask(C.GET_TOPIC, b"\x01") == err("Topic not found")  # short: id 0
    assert await conn.ask(C.DELETE_TOPIC, topic_id_payload(9)) == err(
        "Configuration error: Topic 9 not found"
    )
    assert await conn.ask(C.DELETE_TOPIC, topic_id_payload(1)) == build_control_frame(
        C.TOPIC_RESPONSE, b'{"deleted":1}'
    )
    assert await conn.ask(C.GET_TOPIC, topic_id_payload(1)) == err("Topic not found")
    assert await conn.ask(C.LIST_TOPICS) == build_control_frame(C.TOPIC_RESPONSE, b'{"topics":[]}')
    # ids only increase within one process
    assert (await make_topic(conn, "g"))["id"] == 2


async def test_set_retention(conn: RawConn) -> None:
    assert await conn.ask(C.SET_RETENTION, bytes(19)) == err("Invalid set retention payload")
    assert await conn.ask(C.SET_RETENTION, set_retention_payload(3, 1, 2)) == err(
        "Configuration error: Topic 3 not found"
    )
    await make_topic(conn, "s")
    assert await conn.ask(C.SET_RETENTION, set_retention_payload(1, 0, 0) + b"extra") == (
        build_control_frame(C.TOPIC_RESPONSE, b'{"max_age_secs":0,"max_bytes":0,"topic_id":1}')
    )


async def test_fetch_payload_errors(conn: RawConn) -> None:
    assert await conn.ask(C.FETCH) == err("Fetch request payload required")
    assert await conn.ask(C.FETCH, bytes(15)) == err(
        "Protocol error: Fetch request payload too small"
    )
    assert await conn.ask(C.FETCH, struct.pack("<IQI", 7, 0, 10)) == err("Topic 7 not found")


async def test_subscribe_unsubscribe_commit(conn: RawConn) -> None:
    def ack(consumer: int, offset: int) -> bytes:
        return struct.pack("<QQ", consumer, offset)

    assert await conn.ask(C.SUBSCRIBE, bytes(23)) == err("Invalid subscribe payload")
    assert await conn.ask(C.SUBSCRIBE, subscribe_payload(5, 0, 0, 1)) == err("Topic not found")
    assert await conn.ask(C.UNSUBSCRIBE, bytes(11)) == err("Invalid unsubscribe payload")
    assert await conn.ask(C.COMMIT_OFFSET, bytes(19)) == err("Invalid commit offset payload")
    await make_topic(conn, "c")
    tail = 0xFFFFFFFFFFFFFFFF
    assert await conn.ask(C.SUBSCRIBE, subscribe_payload(1, tail, 0, 7)) == build_control_frame(
        C.SUBSCRIBE_ACK, ack(7, tail)
    )
    assert await conn.ask(C.COMMIT_OFFSET, struct.pack("<IQQ", 1, 7, 55)) == build_control_frame(
        C.COMMIT_ACK, ack(7, 55)
    )
    # offset 0 is replaced by the committed offset; others are echoed
    assert await conn.ask(C.SUBSCRIBE, subscribe_payload(1, 0, 0, 7)) == build_control_frame(
        C.SUBSCRIBE_ACK, ack(7, 55)
    )
    assert await conn.ask(C.SUBSCRIBE, subscribe_payload(1, 3, 0, 7)) == build_control_frame(
        C.SUBSCRIBE_ACK, ack(7, 3)
    )
    # Unsubscribe is answered with an Ack frame carrying the consumer id, subscribed or not
    assert await conn.ask(C.UNSUBSCRIBE, struct.pack("<IQ", 9, 1234)) == build_ack_frame(1234)


async def test_commit_is_shared_across_connections(server, conn: RawConn) -> None:
    await conn.ask(C.COMMIT_OFFSET, struct.pack("<IQQ", 0, 3, 99))
    other = await RawConn.open(server.port)
    assert await other.ask(C.SUBSCRIBE, subscribe_payload(0, 0, 0, 3)) == build_control_frame(
        C.SUBSCRIBE_ACK, struct.pack("<QQ", 3, 99)
    )
    await other.close()


@pytest.mark.parametrize("code", [0x09, 0x11, 0x12, 0x23, 0x24, 0x80, 0x81, 0xFF, 0x30, 0x00, 0x7F])
async def test_unknown_and_response_codes(conn: RawConn, code: int) -> None:
    text = (
        "Authentication handled at connection level" if code == 0x09 else "Invalid client command"
    )
    assert await conn.ask(code) == err(text)


async def test_command_is_the_low_byte_of_batch_id(conn: RawConn) -> None:
    await conn.send(encode_frame(Flag.CONTROL, batch_id=0x1203))
    assert await conn.read_frame() == build_control_frame(C.TOPIC_RESPONSE, b'{"topics":[]}')


async def test_control_wins_over_other_flags(conn: RawConn) -> None:
    flags = Flag.CONTROL | Flag.KEEPALIVE | Flag.ACK | Flag.BATCH_MODE
    await conn.send(encode_frame(flags, batch_id=C.LIST_TOPICS))
    assert await conn.read_frame() == build_control_frame(C.TOPIC_RESPONSE, b'{"topics":[]}')


async def test_list_topics_struct_order_sorted_by_id(conn: RawConn) -> None:
    a = await make_topic(conn, "b")
    b = await make_topic(conn, "a")
    listed = json.loads((await conn.ask(C.LIST_TOPICS))[HEADER_SIZE:])
    assert listed == {
        "topics": [
            {"id": 1, "name": "b", "created_at": a["created_at"], "topic_epoch": 1},
            {"id": 2, "name": "a", "created_at": b["created_at"], "topic_epoch": 1},
        ]
    }


async def test_commit_offset_state_is_bounded_least_recently_written_goes(
    tmp_path: Path,
) -> None:
    config = ServerConfig(data_dir=tmp_path, port=0, max_consumer_offsets=100)
    async with LanceServer(config=config) as server:
        conn = await RawConn.open(server.port)
        commits = [
            build_control_frame(C.COMMIT_OFFSET, struct.pack("<IQQ", 0, i, i))
            for i in range(1, 1001)
        ]
        await conn.send(b"".join(commits))
        await conn.read_frames(1000)
        await conn.send(build_control_frame(C.COMMIT_OFFSET, struct.pack("<IQQ", 0, 950, 7)))
        await conn.read_frame()
        await conn.send(build_control_frame(C.COMMIT_OFFSET, struct.pack("<IQQ", 0, 2000, 1)))
        await conn.read_frame()
        state = server._state
        assert state is not None
        assert len(state.committed) == 100  # not 1001
        assert state.committed.get((0, 950)) == 7  # rewritten, so kept
        assert state.committed.get((0, 901)) is None  # the oldest write went first
        assert state.committed.get((0, 902)) == 902
        for consumer in (950, 901):
            await conn.send(build_control_frame(C.SUBSCRIBE, subscribe_payload(0, 0, 0, consumer)))
        assert await conn.read_frames(2) == [
            build_control_frame(C.SUBSCRIBE_ACK, struct.pack("<QQ", 950, 7)),
            build_control_frame(C.SUBSCRIBE_ACK, struct.pack("<QQ", 901, 0)),
        ]
        await conn.close()
