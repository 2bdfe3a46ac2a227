"""Byte-exact conformance against tests/data/vectors.json: whole response frames compared.

Only `created_at` may differ from a vector (it is the creation time); the expected frame is
rebuilt with the server's value, so every other byte, CRCs included, must match.
"""

from __future__ import annotations

import json

from lnc_client.protocol.control import (
    authenticate_payload,
    commit_offset_payload,
    subscribe_payload,
    unsubscribe_payload,
)
from lnc_client.protocol.frame import (
    HEADER_SIZE,
    ControlCommand,
    build_ack_frame,
    build_control_frame,
)
from lnc_client.server import LanceServer

from .conftest import VECTORS, RawConn


def with_created_at(vector: bytes, actual: bytes) -> bytes:
    """The vector's frame with the JSON created_at replaced by the one the server sent."""
    created_at = json.loads(actual[HEADER_SIZE:])["created_at"]
    body = json.loads(vector[HEADER_SIZE:])
    text = vector[HEADER_SIZE:].replace(
        b'"created_at":%d' % body["created_at"], b'"created_at":%d' % created_at
    )
    return build_control_frame(ControlCommand.TOPIC_RESPONSE, text)


async def test_full_session_matches_vectors(conn: RawConn) -> None:
    await conn.send(VECTORS["keepalive"])
    assert await conn.read_frame() == VECTORS["keepalive"]

    await conn.send(VECTORS["list_topics_request"])
    assert await conn.read_frame() == build_control_frame(
        ControlCommand.TOPIC_RESPONSE, b'{"topics":[]}'
    )

    await conn.send(VECTORS["fetch_request"])
    assert await conn.read_frame() == build_control_frame(
        ControlCommand.ERROR_RESPONSE, b"Topic 1 not found"
    )

    await conn.send(VECTORS["create_topic_request"])
    created = await conn.read_frame()
    assert created == with_created_at(VECTORS["topic_response_create"], created)

    await conn.send(VECTORS["fetch_request"])
    assert await conn.read_frame() == build_control_frame(ControlCommand.FETCH_RESPONSE, bytes(16))

    await conn.send(VECTORS["ingest_topic1_hello"])
    assert await conn.read_frame() == build_ack_frame(1)

    await conn.send(VECTORS["fetch_request"])
    assert await conn.read_frame() == VECTORS["fetch_response_hello"]

    await conn.send(VECTORS["fetch_tail_request"])
    assert await conn.read_frame() == build_control_frame(
        ControlCommand.FETCH_RESPONSE, (10).to_bytes(8, "little") + bytes(8)
    )

    await conn.send(VECTORS["list_topics_request"])
    listed = await conn.read_frame()
    created_at = json.loads(created[HEADER_SIZE:])["created_at"]
    assert listed == build_control_frame(
        ControlCommand.TOPIC_RESPONSE,
        b'{"topics":[{"id":1,"name":"my-events","created_at":%d,"topic_epoch":1}]}' % created_at,
    )

    await conn.send(VECTORS["set_retention_request"])
    assert await conn.read_frame() == build_control_frame(
        ControlCommand.TOPIC_RESPONSE,
        b'{"max_age_secs":86400,"max_bytes":1073741824,"topic_id":1}',
    )

    await conn.send(VECTORS["create_topic_with_retention_request"])
    with_retention = await conn.read_frame()
    created_at = json.loads(with_retention[HEADER_SIZE:])["created_at"]
    assert with_retention == build_control_frame(
        ControlCommand.TOPIC_RESPONSE,
        b'{"created_at":%d,"id":2,"max_age_secs":86400,"max_bytes":0,"name":"events",'
        b'"topic_epoch":1}' % created_at,
    )


async def test_ingest_vector_is_acked_with_the_ack_vector_shape(conn: RawConn) -> None:
    await conn.send(VECTORS["create_topic_request"])
    await conn.read_frame()
    await conn.send(
        VECTORS["ingest_topic1_hello"].replace(b"\x01" + bytes(7), b"\x07" + bytes(7), 1)
    )
    # batch_id 7 with the same payload: the Ack must be exactly the ack_batch_7 vector
    assert await conn.read_frame() == VECTORS["ack_batch_7"]


async def test_catching_up_vector(conn: RawConn) -> None:
    await conn.send(VECTORS["create_topic_request"])
    await conn.read_frame()
    fetch_past_end = build_control_frame(
        ControlCommand.FETCH, (1).to_bytes(4, "little") + (5).to_bytes(8, "little") + bytes(4)
    )
    await conn.send(fetch_past_end)
    assert await conn.read_frame() == VECTORS["catching_up_0"]


async def test_unknown_topic_vector(conn: RawConn) -> None:
    await conn.send(VECTORS["ingest_topic1_hello"])
    assert await conn.read_frame() == VECTORS["error_unknown_topic"]


async def test_consumer_bookkeeping_vectors(conn: RawConn) -> None:
    await conn.send(
        build_control_frame(ControlCommand.SUBSCRIBE, subscribe_payload(0, 0, 4096, 42))
    )
    assert await conn.read_frame() == VECTORS["subscribe_ack"]
    await conn.send(
        build_control_frame(ControlCommand.COMMIT_OFFSET, commit_offset_payload(0, 42, 10))
    )
    assert await conn.read_frame() == VECTORS["commit_ack"]
    await conn.send(build_control_frame(ControlCommand.UNSUBSCRIBE, unsubscribe_payload(0, 42)))
    assert await conn.read_frame() == VECTORS["unsubscribe_reply"]


async def test_authenticate_vector_with_auth_off(conn: RawConn) -> None:
    await conn.send(build_control_frame(ControlCommand.AUTHENTICATE, authenticate_payload("x")))
    assert await conn.read_frame() == VECTORS["authenticate_ok"]


async def test_cluster_status_standalone(conn: RawConn) -> None:
    await conn.send(VECTORS["cluster_status_request"])
    assert await conn.read_frame() == build_control_frame(
        ControlCommand.CLUSTER_STATUS_RESPONSE,
        b'{"current_term":0,"healthy_nodes":1,"is_leader":true,"leader_id":0,'
        b'"mode":"standalone","node_count":1,"node_id":0,"peer_states":{},'
        b'"quorum_available":true}',
    )


async def test_negative_crc32c_keepalive_closes(server: LanceServer) -> None:
    conn = await RawConn.open(server.port)
    await conn.send(VECTORS["keepalive_with_crc32c_header"])
    assert await conn.expect_closed() == b""
    await conn.close()
