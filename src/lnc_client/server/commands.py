"""Control commands: request frame in, exact response frame out (PROTOCOL.md §4-6).

`Commands.handle` is called by a session for every control frame. Commands answered from memory
(ListTopics, GetTopic, GetClusterStatus, Subscribe, Unsubscribe, CommitOffset, Authenticate,
unknown codes) return the response frame's parts at once; commands that touch the disk
(CreateTopic, CreateTopicWithRetention, DeleteTopic, SetRetention, Fetch) return a coroutine the
session awaits. Either way the result is a list of buffers that form exactly one frame, ready for
`transport.writelines`. Error texts and JSON bodies come from `lnc_client.protocol.control`,
which encodes them byte for byte as the real server does.

Auth. With auth on, every command but Authenticate answers `Authentication required` until the
connection has authenticated (the real server gates only ingest: docs/compatibility.md), and
each refused Authenticate is counted in `ConnectionAuth.failures` (the session closes the
connection at `auth.max_failures`).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Final

from lnc_client.errors import InvalidTopicNameError, LanceError, validate_topic_name
from lnc_client.protocol import error_texts as texts
from lnc_client.protocol.control import (
    FETCH_RESPONSE_HEADER_SIZE,
    TAIL_OFFSET,
    AuthResult,
    ClusterStatus,
    RetentionInfo,
    cluster_status_json,
    deleted_json,
    encode_auth_response,
    encode_catching_up,
    encode_consumer_offset,
    encode_error_response,
    encode_fetch_response,
    parse_authenticate_request,
    parse_commit_offset_request,
    parse_create_topic_request,
    parse_create_topic_with_retention_request,
    parse_fetch_request,
    parse_set_retention_request,
    parse_subscribe_request,
    parse_topic_id_request,
    parse_unsubscribe_request,
    retention_json,
    topic_json,
    topic_list_json,
)
from lnc_client.protocol.frame import (
    ControlCommand,
    Flag,
    build_ack_frame,
    encode_frame,
    encode_header,
)
from lnc_client.server.config import FaultConfig, ServerConfig
from lnc_client.server.metrics import ServerStats
from lnc_client.server.storage.segments import Buffer, TopicSnapshot
from lnc_client.server.storage.topics import Topic, TopicRegistry
from lnc_client.server.storage.writer import GroupCommitWriter

__all__ = [
    "AUTH_REQUIRED",
    "BoundedOffsets",
    "Commands",
    "ConnectionAuth",
    "Reply",
    "ServerState",
    "error_frame",
    "io_error_text",
]

Payload = bytes | memoryview
Reply = list[Buffer]
"""The parts of exactly one response frame."""

_STANDALONE: Final = ClusterStatus(
    node_id=0,
    is_leader=True,
    leader_id=0,
    current_term=0,
    node_count=1,
    healthy_nodes=1,
    quorum_available=True,
    mode="standalone",
)
_STATUS_FRAME: Final = encode_frame(
    Flag.CONTROL,
    cluster_status_json(_STANDALONE),
    batch_id=ControlCommand.CLUSTER_STATUS_RESPONSE,
)
_AUTHENTICATED: Final = AuthResult(ok=True, message="Authenticated")
_INVALID_TOKEN: Final = AuthResult(ok=False, message=texts.INVALID_TOKEN.text)


def _control(code: ControlCommand, payload: bytes) -> Reply:
    return [encode_frame(Flag.CONTROL, payload, batch_id=code)]


def error_frame(text: str) -> Reply:
    """An ErrorResponse (0xFF) frame with the plain-text message."""
    return _control(ControlCommand.ERROR_RESPONSE, encode_error_response(text))


AUTH_REQUIRED: Final = error_frame(texts.AUTHENTICATION_REQUIRED.text)
"""The ErrorResponse for anything but Authenticate before a connection authenticated."""


def _server_text(error: LanceError) -> str:
    return error.server_text or error.message


def io_error_text(error: OSError) -> str:
    """Rust's `I/O error: <std::io::Error>` Display, e.g. `... (os error 36)`."""
    if error.errno is None:
        return texts.IO_ERROR.format(detail=error)
    return texts.IO_ERROR.format(detail=f"{error.strerror} (os error {error.errno})")


class BoundedOffsets:
    """Offsets by (topic_id, consumer_id), at most `limit` of them; the least recently set go.

    Any client can invent consumer ids, so the table must not grow with them: past the limit
    the entry written longest ago is forgotten (a consumer that comes back after that starts
    from offset 0, as after a server restart).
    """

    __slots__ = ("_entries", "_limit")

    def __init__(self, limit: int) -> None:
        self._entries: dict[tuple[int, int], int] = {}
        self._limit = limit

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[int, int]) -> int | None:
        """The offset stored for `key`, if any."""
        return self._entries.get(key)

    def set(self, key: tuple[int, int], offset: int) -> None:
        """Store an offset (it becomes the most recent), forgetting the oldest past the limit."""
        entries = self._entries
        entries.pop(key, None)
        entries[key] = offset
        if len(entries) > self._limit:
            del entries[next(iter(entries))]

    def pop(self, key: tuple[int, int]) -> None:
        """Forget `key`."""
        self._entries.pop(key, None)


@dataclass(slots=True)
class ServerState:
    """What every session shares: storage, configuration and the process-wide state.

    Attributes:
        config: The server's configuration.
        registry: The topics.
        writer: The group-commit writer.
        tokens: Accepted auth tokens (empty when auth is off).
        faults: The current fault switches (replaced at runtime by `LanceServer.faults`).
        committed: CommitOffset values by (topic_id, consumer_id), bounded by
            `config.max_consumer_offsets`.
        subscriptions: Subscribe positions by (topic_id, consumer_id), bounded likewise.
        stopping: Set when `stop()` begins; a connection that arrives later is dropped at once.
        buffered_bytes: Receive-buffer bytes of all sessions (bounded by
            `config.max_buffered_bytes_total`).
        stats: The server's counters (`LanceServer.metrics()`).
    """

    config: ServerConfig
    registry: TopicRegistry
    writer: GroupCommitWriter
    tokens: frozenset[str]
    faults: FaultConfig
    committed: BoundedOffsets = field(init=False)
    subscriptions: BoundedOffsets = field(init=False)
    stopping: bool = False
    buffered_bytes: int = 0
    stats: ServerStats = field(default_factory=ServerStats)

    def __post_init__(self) -> None:
        """Create the bounded offset tables."""
        self.committed = BoundedOffsets(self.config.max_consumer_offsets)
        self.subscriptions = BoundedOffsets(self.config.max_consumer_offsets)


@dataclass(slots=True)
class ConnectionAuth:
    """A connection's auth state; authenticated from the start when auth is off (§9).

    Attributes:
        authenticated: Whether commands (and ingest) are allowed.
        failures: Authenticate attempts refused on this connection so far.
    """

    authenticated: bool
    failures: int = 0


class Commands:
    """Dispatches control commands for all sessions of one server."""

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._sync = {
            ControlCommand.LIST_TOPICS: self._list_topics,
            ControlCommand.GET_TOPIC: self._get_topic,
            ControlCommand.GET_CLUSTER_STATUS: self._cluster_status,
            ControlCommand.SUBSCRIBE: self._subscribe,
            ControlCommand.UNSUBSCRIBE: self._unsubscribe,
            ControlCommand.COMMIT_OFFSET: self._commit_offset,
        }

    def handle(
        self, command: int, payload: Payload, auth: ConnectionAuth
    ) -> Reply | Coroutine[None, None, Reply]:
        """Answer one control command.

        Args:
            command: The command code (low byte of batch_id).
            payload: The request payload.
            auth: The connection's auth state (Authenticate changes it).

        Returns:
            The response frame's parts, or a coroutine producing them for disk-bound commands.
        """
        self._state.stats.control_requests += 1
        if not auth.authenticated and command != ControlCommand.AUTHENTICATE:
            return AUTH_REQUIRED
        try:
            return self._dispatch(command, payload, auth)
        except LanceError as error:
            return error_frame(_server_text(error))

    def _dispatch(
        self, command: int, payload: Payload, auth: ConnectionAuth
    ) -> Reply | Coroutine[None, None, Reply]:
        sync = self._sync.get(command)  # type: ignore[call-overload]
        if sync is not None:
            result: Reply = sync(payload)
            return result
        if command == ControlCommand.FETCH:
            return self._fetch(payload)
        if command == ControlCommand.CREATE_TOPIC:
            return self._create(parse_create_topic_request(payload), None)
        if command == ControlCommand.CREATE_TOPIC_WITH_RETENTION:
            request = parse_create_topic_with_retention_request(payload)
            retention = RetentionInfo(request.max_age_secs, request.max_bytes)
            return self._create(request.name, retention)
        if command == ControlCommand.DELETE_TOPIC:
            return self._delete(parse_topic_id_request(payload))
        if command == ControlCommand.SET_RETENTION:
            return self._set_retention(payload)
        if command == ControlCommand.AUTHENTICATE:
            return self._authenticate(payload, auth)
        if command == ControlCommand.AUTHENTICATE_RESPONSE:
            return error_frame(texts.AUTH_AT_CONNECTION_LEVEL.text)
        return error_frame(texts.INVALID_CLIENT_COMMAND.text)

    # --- memory-only commands -----------------------------------------------------------------

    def _list_topics(self, payload: Payload) -> Reply:
        topics = sorted(self._state.registry.by_id.values(), key=lambda t: t.id)
        return _control(ControlCommand.TOPIC_RESPONSE, topic_list_json([t.info() for t in topics]))

    def _get_topic(self, payload: Payload) -> Reply:
        topic = self._state.registry.by_id.get(parse_topic_id_request(payload))
        if topic is None:
            return error_frame(texts.TOPIC_NOT_FOUND.text)
        return _control(ControlCommand.TOPIC_RESPONSE, topic_json(topic.info()))

    def _cluster_status(self, payload: Payload) -> Reply:
        return [_STATUS_FRAME]

    def _subscribe(self, payload: Payload) -> Reply:
        request = parse_subscribe_request(payload)
        if request.topic_id != 0 and request.topic_id not in self._state.registry.by_id:
            return error_frame(texts.TOPIC_NOT_FOUND.text)
        key = (request.topic_id, request.consumer_id)
        offset = request.start_offset
        if offset == 0:
            offset = self._state.committed.get(key) or 0
        self._state.subscriptions.set(key, offset)
        return _control(
            ControlCommand.SUBSCRIBE_ACK, encode_consumer_offset(request.consumer_id, offset)
        )

    def _unsubscribe(self, payload: Payload) -> Reply:
        request = parse_unsubscribe_request(payload)
        self._state.subscriptions.pop((request.topic_id, request.consumer_id))
        return [build_ack_frame(request.consumer_id)]

    def _commit_offset(self, payload: Payload) -> Reply:
        request = parse_commit_offset_request(payload)
        key = (request.topic_id, request.consumer_id)
        self._state.committed.set(key, request.offset)
        position = self._state.subscriptions.get(key)
        if position is not None and request.offset > position:
            self._state.subscriptions.set(key, request.offset)
        return _control(
            ControlCommand.COMMIT_ACK, encode_consumer_offset(request.consumer_id, request.offset)
        )

    def _authenticate(self, payload: Payload, auth: ConnectionAuth) -> Reply:
        try:
            token = parse_authenticate_request(payload)
        except LanceError as error:
            result = AuthResult(ok=False, message=_server_text(error))
        else:
            tokens = self._state.tokens
            if not self._state.config.auth.enabled or token in tokens:
                auth.authenticated = True
                result = _AUTHENTICATED
            else:
                result = _INVALID_TOKEN
        if not result.ok:
            auth.failures += 1
        return _control(ControlCommand.AUTHENTICATE_RESPONSE, encode_auth_response(result))

    # --- disk-bound commands ------------------------------------------------------------------

    def _create(
        self, name: str, retention: RetentionInfo | None
    ) -> Reply | Coroutine[None, None, Reply]:
        registry = self._state.registry
        if name in registry.by_name or name in registry.deleting:
            return error_frame(texts.ALREADY_EXISTS.format(name=name))
        if not name:
            return error_frame(texts.NAME_EMPTY.text)
        try:
            validate_topic_name(name)
        except InvalidTopicNameError:
            return error_frame(texts.NAME_INVALID.format(name=name))
        return self._persist_new_topic(self._state.registry.add(name, retention))

    async def _persist_new_topic(self, topic: Topic) -> Reply:
        registry = self._state.registry
        try:
            await self._state.writer.call(lambda: registry.create_on_disk(topic))
        except OSError as error:
            registry.remove(topic)
            return error_frame(io_error_text(error))
        info = topic.info(with_retention=topic.retention is not None)
        return _control(ControlCommand.TOPIC_RESPONSE, topic_json(info))

    def _delete(self, topic_id: int) -> Reply | Coroutine[None, None, Reply]:
        registry = self._state.registry
        topic = registry.by_id.get(topic_id)
        if topic is None:
            return error_frame(texts.TOPIC_ID_NOT_FOUND_CONFIG.format(topic_id=topic_id))
        registry.begin_delete(topic)
        writer = self._state.writer

        async def delete_on_disk() -> OSError | None:
            deleted = False
            try:
                leftover = await writer.call(lambda: registry.delete_on_disk(topic))
                deleted = True
            finally:
                registry.end_delete(topic, deleted=deleted)
            return leftover

        async def delete() -> Reply:
            try:  # shielded: memory follows the disk even if the connection goes away
                leftover = await asyncio.shield(delete_on_disk())
            except OSError as error:
                return error_frame(io_error_text(error))
            if leftover is not None:
                return error_frame(io_error_text(leftover))
            return _control(ControlCommand.TOPIC_RESPONSE, deleted_json(topic_id))

        return delete()

    def _set_retention(self, payload: Payload) -> Reply | Coroutine[None, None, Reply]:
        request = parse_set_retention_request(payload)
        registry = self._state.registry
        topic = registry.by_id.get(request.topic_id)
        if topic is None:
            return error_frame(texts.TOPIC_ID_NOT_FOUND_CONFIG.format(topic_id=request.topic_id))
        previous = topic.retention
        wanted = RetentionInfo(request.max_age_secs, request.max_bytes)
        topic.retention = wanted

        async def persist() -> Reply:
            try:
                await self._state.writer.call(lambda: registry.write_metadata(topic))
            except OSError as error:
                if topic.retention is wanted:  # memory follows the disk, unless changed since
                    topic.retention = previous
                return error_frame(io_error_text(error))
            body = retention_json(request.topic_id, request.max_age_secs, request.max_bytes)
            return _control(ControlCommand.TOPIC_RESPONSE, body)

        return persist()

    def _fetch(self, payload: Payload) -> Reply | Coroutine[None, None, Reply]:
        request = parse_fetch_request(payload)
        topic = self._state.registry.by_id.get(request.topic_id)
        if topic is None:
            return error_frame(texts.TOPIC_ID_NOT_FOUND.format(topic_id=request.topic_id))
        snapshot = topic.log.snapshot
        start = request.start_offset
        if start == TAIL_OFFSET:
            return _fetch_frame(snapshot.total, b"")
        if start > snapshot.total:
            return _control(ControlCommand.CATCHING_UP, encode_catching_up(snapshot.total))
        size = min(request.max_bytes, snapshot.total - start, self._state.config.fetch_window_cap)
        cap = self._state.faults.max_fetch_bytes
        if cap:
            size = min(size, cap)
        if size <= 0:
            return _fetch_frame(start, b"")
        return _read_window(snapshot, start, size, self._state.stats)


async def _read_window(snapshot: TopicSnapshot, start: int, size: int, stats: ServerStats) -> Reply:
    """Read a window in a thread; a fetch that returned data is counted (as `fetches` says)."""
    loop = asyncio.get_running_loop()
    try:
        reply = await loop.run_in_executor(None, _read_frame, snapshot, start, size)
    except OSError as error:
        return error_frame(io_error_text(error))
    stats.fetches += 1
    stats.fetch_bytes += size
    return reply


def _read_frame(snapshot: TopicSnapshot, start: int, size: int) -> Reply:
    """Read a window and build its FetchResponse frame (blocking; runs in a thread)."""
    return _fetch_frame(start, snapshot.read(start, size))


def _fetch_frame(start: int, data: bytes) -> Reply:
    head, body = encode_fetch_response(start + len(data), data)
    crc = zlib.crc32(body, zlib.crc32(head)) if data else zlib.crc32(head)
    header = encode_header(
        Flag.CONTROL,
        batch_id=ControlCommand.FETCH_RESPONSE,
        payload_length=FETCH_RESPONSE_HEADER_SIZE + len(data),
        payload_crc=crc,
    )
    return [header, head, body] if data else [header, head]
