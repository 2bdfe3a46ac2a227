"""Typed control operations over one `Connection`: request payload in, typed value out.

Each function builds the request payload (`protocol.control`), sends it with
`Connection.request` (which matches the answer to the request and raises the server's
ErrorResponse as a typed `LanceError`), and parses the answer into a frozen value. They do not
retry: `reconnect.ConnectionManager.call` adds reconnects and retries on top, and the Producer,
StandaloneConsumer and LanceClient use them through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from lnc_client.connection import Connection
from lnc_client.errors import ServerCatchingUpError, validate_topic_name
from lnc_client.protocol import control
from lnc_client.protocol.control import (
    ClusterStatus,
    CommitAck,
    FetchResult,
    RetentionResult,
    SubscribeAck,
    TopicInfo,
)
from lnc_client.protocol.frame import ControlCommand as Command

R = TypeVar("R")

__all__ = [
    "cluster_status",
    "commit_offset",
    "create_topic",
    "create_topic_with_retention",
    "delete_topic",
    "end_offset",
    "fetch",
    "get_topic",
    "list_topics",
    "set_retention",
    "subscribe",
    "unsubscribe",
]


async def create_topic(conn: Connection, name: str, *, timeout: float | None = None) -> TopicInfo:
    """CreateTopic (0x01); the name is validated before anything is sent.

    Raises:
        InvalidTopicNameError: The name breaks the server's rule.
        TopicAlreadyExistsError: A topic of that name exists (standalone server).
    """
    validate_topic_name(name)
    payload = control.create_topic_payload(name)
    return await _ask(conn, Command.CREATE_TOPIC, payload, control.parse_topic_response, timeout)


async def create_topic_with_retention(
    conn: Connection,
    name: str,
    max_age_secs: int,
    max_bytes: int,
    *,
    timeout: float | None = None,
) -> TopicInfo:
    """CreateTopicWithRetention (0x06); the result carries the retention echoed back."""
    validate_topic_name(name)
    payload = control.create_topic_with_retention_payload(name, max_age_secs, max_bytes)
    parse = control.parse_topic_response
    return await _ask(conn, Command.CREATE_TOPIC_WITH_RETENTION, payload, parse, timeout)


async def get_topic(conn: Connection, topic_id: int, *, timeout: float | None = None) -> TopicInfo:
    """GetTopic (0x04).

    Raises:
        TopicNotFoundError: No such topic.
    """
    payload = control.topic_id_payload(topic_id)
    return await _ask(conn, Command.GET_TOPIC, payload, control.parse_topic_response, timeout)


async def list_topics(conn: Connection, *, timeout: float | None = None) -> list[TopicInfo]:
    """ListTopics (0x03), sorted by id (the server's order is effectively random)."""
    topics = await _ask(conn, Command.LIST_TOPICS, b"", control.parse_topic_list, timeout)
    return sorted(topics, key=lambda topic: topic.id)


async def delete_topic(conn: Connection, topic_id: int, *, timeout: float | None = None) -> int:
    """DeleteTopic (0x02); returns the deleted id.

    Raises:
        TopicNotFoundError: No such topic.
    """
    payload = control.topic_id_payload(topic_id)
    return await _ask(conn, Command.DELETE_TOPIC, payload, control.parse_deleted, timeout)


async def set_retention(
    conn: Connection,
    topic_id: int,
    max_age_secs: int,
    max_bytes: int,
    *,
    timeout: float | None = None,
) -> RetentionResult:
    """SetRetention (0x05). Note that 0 is a real limit on the server, not "unlimited"."""
    payload = control.set_retention_payload(topic_id, max_age_secs, max_bytes)
    parse = control.parse_retention_response
    return await _ask(conn, Command.SET_RETENTION, payload, parse, timeout)


async def cluster_status(conn: Connection, *, timeout: float | None = None) -> ClusterStatus:
    """GetClusterStatus (0x07)."""
    parse = control.parse_cluster_status
    return await _ask(conn, Command.GET_CLUSTER_STATUS, b"", parse, timeout)


async def fetch(
    conn: Connection,
    topic_id: int,
    start_offset: int,
    max_bytes: int,
    *,
    timeout: float | None = None,
) -> FetchResult:
    """Fetch (0x10) a raw window of at most `max_bytes` from byte offset `start_offset`.

    The window asked for is capped at what the connection accepts in one frame
    (`ConnectionOptions.max_frame_payload` less the 16-byte response header): real Lance has
    no window cap and would otherwise send a frame the connection must refuse.

    Raises:
        ServerCatchingUpError: The offset lies past the end; `server_offset` is the end.
        TopicNotFoundError: No such topic (`Topic <id> not found`).
    """
    window = min(max_bytes, conn.options.max_frame_payload - control.FETCH_RESPONSE_HEADER_SIZE)
    reply = await conn.request(
        Command.FETCH,
        control.fetch_payload(topic_id, start_offset, window),
        timeout=timeout,
    )
    if reply.command == Command.CATCHING_UP:
        raise ServerCatchingUpError(control.parse_catching_up(reply.payload))
    return control.parse_fetch_response(reply.payload)


async def end_offset(conn: Connection, topic_id: int, *, timeout: float | None = None) -> int:
    """Return the topic's end offset (total stored bytes) with the u64::MAX tail fetch."""
    result = await fetch(conn, topic_id, control.TAIL_OFFSET, 1, timeout=timeout)
    return result.next_offset


async def subscribe(
    conn: Connection,
    topic_id: int,
    start_offset: int,
    max_batch_bytes: int,
    consumer_id: int,
    *,
    timeout: float | None = None,
) -> SubscribeAck:
    """Subscribe (0x20): server-side bookkeeping only; the server never pushes data."""
    payload = control.subscribe_payload(topic_id, start_offset, max_batch_bytes, consumer_id)
    return await _ask(conn, Command.SUBSCRIBE, payload, control.parse_subscribe_ack, timeout)


async def unsubscribe(
    conn: Connection, topic_id: int, consumer_id: int, *, timeout: float | None = None
) -> None:
    """Unsubscribe (0x21): answered by an Ack frame carrying the consumer id."""
    await conn.request(
        Command.UNSUBSCRIBE,
        control.unsubscribe_payload(topic_id, consumer_id),
        timeout=timeout,
        unsubscribe_id=consumer_id,
    )


async def commit_offset(
    conn: Connection,
    topic_id: int,
    consumer_id: int,
    offset: int,
    *,
    timeout: float | None = None,
) -> CommitAck:
    """CommitOffset (0x22): stores the offset on the server (in memory there, not durable)."""
    payload = control.commit_offset_payload(topic_id, consumer_id, offset)
    return await _ask(conn, Command.COMMIT_OFFSET, payload, control.parse_commit_ack, timeout)


async def _ask(
    conn: Connection,
    command: Command,
    payload: bytes,
    parse: Callable[[memoryview | bytes], R],
    timeout: float | None,
) -> R:
    """Send one request and parse its answer's payload."""
    reply = await conn.request(command, payload, timeout=timeout)
    return parse(reply.payload)
