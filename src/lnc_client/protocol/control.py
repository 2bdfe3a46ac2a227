"""Control-command payloads: builders, parsers and the typed values they produce.

Sans-I/O. A control frame carries its command code in batch_id and a payload whose layout
depends on the command (PROTOCOL.md §4.2). This module turns both directions into typed values:

* **Client side:** `*_payload` builders make request payloads; `parse_*` functions turn response
  payloads into frozen values (`TopicInfo`, `ClusterStatus`, `FetchResult`, ...). JSON responses
  tolerate extra keys and reject missing or mistyped ones with `ProtocolError`.
* **Server side:** `parse_*_request` functions read request payloads with the real server's
  lenient length rules (trailing bytes ignored, short id payloads read as 0) and raise
  `InvalidRequestError` carrying the server's exact error text; `*_json` / `encode_*`
  functions produce response payloads byte for byte as the real server does (§4.3: compact JSON,
  keys sorted, except ListTopics in struct order).

All integers are little-endian.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from lnc_client.errors import LanceError, ProtocolError
from lnc_client.protocol import error_texts as texts

__all__ = [
    "FETCH_RESPONSE_HEADER_SIZE",
    "TAIL_OFFSET",
    "AuthResult",
    "ClusterStatus",
    "CommitAck",
    "CommitOffsetRequest",
    "CreateTopicWithRetentionRequest",
    "FetchRequest",
    "FetchResult",
    "RetentionInfo",
    "RetentionResult",
    "SetRetentionRequest",
    "SubscribeAck",
    "SubscribeRequest",
    "TopicInfo",
    "UnsubscribeRequest",
    "authenticate_payload",
    "cluster_status_json",
    "commit_offset_payload",
    "create_topic_payload",
    "create_topic_with_retention_payload",
    "deleted_json",
    "encode_auth_response",
    "encode_catching_up",
    "encode_consumer_offset",
    "encode_error_response",
    "encode_fetch_response",
    "fetch_payload",
    "parse_auth_response",
    "parse_authenticate_request",
    "parse_catching_up",
    "parse_cluster_status",
    "parse_commit_ack",
    "parse_commit_offset_request",
    "parse_create_topic_request",
    "parse_create_topic_with_retention_request",
    "parse_deleted",
    "parse_error_response",
    "parse_fetch_request",
    "parse_fetch_response",
    "parse_retention_response",
    "parse_set_retention_request",
    "parse_subscribe_ack",
    "parse_subscribe_request",
    "parse_topic_id_request",
    "parse_topic_list",
    "parse_topic_response",
    "parse_unsubscribe_request",
    "retention_json",
    "set_retention_payload",
    "subscribe_payload",
    "topic_id_payload",
    "topic_json",
    "topic_list_json",
    "unsubscribe_payload",
]

TAIL_OFFSET: Final = 0xFFFFFFFFFFFFFFFF
"""Fetch start_offset u64::MAX: the server answers with the topic's end offset (§5)."""

_U32: Final = struct.Struct("<I")
_U64: Final = struct.Struct("<Q")
_FETCH: Final = struct.Struct("<IQI")
_FETCH_RESPONSE: Final = struct.Struct("<QII")
FETCH_RESPONSE_HEADER_SIZE: Final = _FETCH_RESPONSE.size
"""Bytes before the data in a FetchResponse payload: next_offset, bytes_returned, count (§5)."""
_SET_RETENTION: Final = struct.Struct("<IQQ")
_RETENTION_VALUES: Final = struct.Struct("<QQ")
_NAME_LENGTH: Final = struct.Struct("<H")
_SUBSCRIBE: Final = struct.Struct("<IQIQ")
_UNSUBSCRIBE: Final = struct.Struct("<IQ")
_COMMIT: Final = struct.Struct("<IQQ")
_CONSUMER_OFFSET: Final = struct.Struct("<QQ")
_U64_MAX: Final = 0xFFFFFFFFFFFFFFFF


def _compact(value: object, *, sort_keys: bool) -> bytes:
    return json.dumps(
        value, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=False
    ).encode()


# --- typed values --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetentionInfo:
    """A topic's retention settings. 0 is a real limit on the server, not "unlimited" (§7).

    Attributes:
        max_age_secs: Closed segments older than this are deleted.
        max_bytes: Oldest closed segments are deleted until the topic fits.
    """

    max_age_secs: int = 0
    max_bytes: int = 0


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """A topic as the server describes it.

    Supports `topic["id"]`-style access for code written against older clients.

    Attributes:
        id: The topic id (>= 1).
        name: The topic name.
        created_at: Creation time, seconds since the Unix epoch.
        topic_epoch: Always 1 on the real server.
        retention: Retention as echoed by CreateTopicWithRetention; the server never reports
            it in GetTopic or ListTopics, so it is None there.
    """

    id: int
    name: str
    created_at: int = 0
    topic_epoch: int = 1
    retention: RetentionInfo | None = None

    def __getitem__(self, key: str) -> object:
        """Return a field by name, as the dict-shaped results of old clients allowed."""
        if key not in ("id", "name", "created_at", "topic_epoch", "retention"):
            raise KeyError(key)
        return getattr(self, key)


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """The SetRetention response.

    Attributes:
        topic_id: The topic changed.
        max_age_secs: The stored maximum age.
        max_bytes: The stored maximum size.
    """

    topic_id: int
    max_age_secs: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """The GetClusterStatus (0x81) response.

    Attributes:
        node_id: The answering node (always 0 on a standalone server).
        is_leader: Whether the answering node leads.
        leader_id: The leader's node id, or None when unknown.
        current_term: The Raft term (0 standalone).
        node_count: Nodes in the cluster.
        healthy_nodes: Nodes currently healthy.
        quorum_available: Whether a quorum is reachable.
        peer_states: Peer node id to one of Disconnected, Connecting, Connected, Failed.
        mode: "standalone" on a standalone server; None in cluster mode (the key is absent).
    """

    node_id: int
    is_leader: bool
    leader_id: int | None
    current_term: int
    node_count: int
    healthy_nodes: int
    quorum_available: bool
    peer_states: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    mode: str | None = None

    @property
    def is_standalone(self) -> bool:
        """Whether the server runs in standalone mode."""
        return self.mode == "standalone"


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A FetchResponse (0x11).

    Attributes:
        next_offset: start_offset + bytes returned (the end offset for a tail request).
        record_count: 1 if there is data, else 0; not a real count (§5).
        data: The raw window; it may start or end inside a record.
    """

    next_offset: int
    record_count: int
    data: memoryview | bytes

    @property
    def bytes_returned(self) -> int:
        """Length of the data window."""
        return len(self.data)

    def __iter__(self) -> Iterator[int | memoryview | bytes]:
        """Unpack as lnc-client 0.2.9's tuple: `start, end, high_water_mark, data`.

        `start` is the offset the window begins at (`next_offset - len(data)`, where 0.2.9
        always gave 0); `end` and `high_water_mark` are both `next_offset`, as in 0.2.9.
        """
        return iter(
            (self.next_offset - len(self.data), self.next_offset, self.next_offset, self.data)
        )


@dataclass(frozen=True, slots=True)
class SubscribeAck:
    """A SubscribeAck (0x23): the consumer and the offset the server holds for it."""

    consumer_id: int
    offset: int


@dataclass(frozen=True, slots=True)
class CommitAck:
    """A CommitAck (0x24): the consumer and the offset committed, as sent."""

    consumer_id: int
    offset: int


@dataclass(frozen=True, slots=True)
class AuthResult:
    """An AuthenticateResponse (0x09).

    Attributes:
        ok: Whether the token was accepted (status byte 1).
        message: The server's text ("Authenticated", "Invalid token", ...).
    """

    ok: bool
    message: str


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """A Fetch (0x10) request."""

    topic_id: int
    start_offset: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class SetRetentionRequest:
    """A SetRetention (0x05) request."""

    topic_id: int
    max_age_secs: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class CreateTopicWithRetentionRequest:
    """A CreateTopicWithRetention (0x06) request; the name is decoded lossily as UTF-8."""

    name: str
    max_age_secs: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    """A Subscribe (0x20) request."""

    topic_id: int
    start_offset: int
    max_batch_bytes: int
    consumer_id: int


@dataclass(frozen=True, slots=True)
class UnsubscribeRequest:
    """An Unsubscribe (0x21) request."""

    topic_id: int
    consumer_id: int


@dataclass(frozen=True, slots=True)
class CommitOffsetRequest:
    """A CommitOffset (0x22) request."""

    topic_id: int
    consumer_id: int
    offset: int


# --- request builders (client) ------------------------------------------------------------


def create_topic_payload(name: str) -> bytes:
    """CreateTopic (0x01): the name as UTF-8."""
    return name.encode()


def topic_id_payload(topic_id: int) -> bytes:
    """DeleteTopic (0x02) and GetTopic (0x04): u32 topic_id."""
    return _U32.pack(topic_id)


def set_retention_payload(topic_id: int, max_age_secs: int, max_bytes: int) -> bytes:
    """SetRetention (0x05): u32 topic_id, u64 max_age_secs, u64 max_bytes."""
    return _SET_RETENTION.pack(topic_id, max_age_secs, max_bytes)


def create_topic_with_retention_payload(name: str, max_age_secs: int, max_bytes: int) -> bytes:
    """CreateTopicWithRetention (0x06): u16 name length, name, u64 max_age, u64 max_bytes.

    Raises:
        ValueError: The name is longer than 65535 bytes.
    """
    raw = name.encode()
    if len(raw) > 0xFFFF:
        raise ValueError("a topic name is limited to 65535 bytes here")
    return _NAME_LENGTH.pack(len(raw)) + raw + _RETENTION_VALUES.pack(max_age_secs, max_bytes)


def authenticate_payload(token: str) -> bytes:
    """Authenticate (0x08): the token as UTF-8."""
    return token.encode()


def fetch_payload(topic_id: int, offset: int, max_bytes: int) -> bytes:
    """Fetch (0x10): u32 topic_id, u64 start offset, u32 max_bytes."""
    return _FETCH.pack(topic_id, offset, max_bytes)


def subscribe_payload(
    topic_id: int, start_offset: int, max_batch_bytes: int, consumer_id: int
) -> bytes:
    """Subscribe (0x20): u32 topic_id, u64 start_offset, u32 max_batch_bytes, u64 consumer."""
    return _SUBSCRIBE.pack(topic_id, start_offset, max_batch_bytes, consumer_id)


def unsubscribe_payload(topic_id: int, consumer_id: int) -> bytes:
    """Unsubscribe (0x21): u32 topic_id, u64 consumer_id."""
    return _UNSUBSCRIBE.pack(topic_id, consumer_id)


def commit_offset_payload(topic_id: int, consumer_id: int, offset: int) -> bytes:
    """CommitOffset (0x22): u32 topic_id, u64 consumer_id, u64 offset."""
    return _COMMIT.pack(topic_id, consumer_id, offset)


# --- response parsers (client) ------------------------------------------------------------


def _load_object(payload: bytes | memoryview, what: str) -> dict[str, object]:
    try:
        value = json.loads(bytes(payload))
    except (ValueError, RecursionError) as error:
        raise ProtocolError(f"{what}: response is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def _int(obj: Mapping[str, object], key: str, what: str) -> int:
    value = obj.get(key)
    if type(value) is not int or not 0 <= value <= _U64_MAX:
        raise ProtocolError(f"{what}: {key!r} must be an integer in 0..2**64-1, got {value!r}")
    return value


def _optional_int(obj: Mapping[str, object], key: str, what: str) -> int | None:
    return None if obj.get(key) is None else _int(obj, key, what)


def _bool(obj: Mapping[str, object], key: str, what: str) -> bool:
    value = obj.get(key)
    if not isinstance(value, bool):
        raise ProtocolError(f"{what}: {key!r} must be a boolean, got {value!r}")
    return value


def _str(obj: Mapping[str, object], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"{what}: {key!r} must be a string, got {value!r}")
    return value


def _topic_from(obj: Mapping[str, object], what: str) -> TopicInfo:
    retention = None
    if "max_age_secs" in obj or "max_bytes" in obj:
        retention = RetentionInfo(_int(obj, "max_age_secs", what), _int(obj, "max_bytes", what))
    nested = obj.get("retention")
    if nested is not None and not isinstance(nested, dict):
        raise ProtocolError(f"{what}: 'retention' must be an object or null")
    if isinstance(nested, dict):
        retention = RetentionInfo(
            _int(nested, "max_age_secs", what), _int(nested, "max_bytes", what)
        )
    return TopicInfo(
        id=_int(obj, "id", what),
        name=_str(obj, "name", what),
        created_at=_int(obj, "created_at", what) if "created_at" in obj else 0,
        topic_epoch=_int(obj, "topic_epoch", what) if "topic_epoch" in obj else 1,
        retention=retention,
    )


def parse_topic_response(payload: bytes | memoryview) -> TopicInfo:
    """Parse a TopicResponse (0x80) for CreateTopic, GetTopic or CreateTopicWithRetention.

    Raises:
        ProtocolError: Not a JSON object with an integer `id` and a string `name`.
    """
    return _topic_from(_load_object(payload, "topic response"), "topic response")


def parse_topic_list(payload: bytes | memoryview) -> list[TopicInfo]:
    """Parse a ListTopics TopicResponse (0x80): `{"topics":[...]}`.

    Raises:
        ProtocolError: The `topics` list is missing or holds a malformed entry.
    """
    obj = _load_object(payload, "topic list")
    topics = obj.get("topics")
    if not isinstance(topics, list):
        raise ProtocolError("topic list: 'topics' must be a list")
    result = []
    for entry in topics:
        if not isinstance(entry, dict):
            raise ProtocolError("topic list: every entry must be an object")
        result.append(_topic_from(entry, "topic list"))
    return result


def parse_deleted(payload: bytes | memoryview) -> int:
    """Parse a DeleteTopic TopicResponse `{"deleted":<id>}` into the deleted id."""
    return _int(_load_object(payload, "delete response"), "deleted", "delete response")


def parse_retention_response(payload: bytes | memoryview) -> RetentionResult:
    """Parse a SetRetention TopicResponse into a `RetentionResult`."""
    what = "retention response"
    obj = _load_object(payload, what)
    return RetentionResult(
        _int(obj, "topic_id", what), _int(obj, "max_age_secs", what), _int(obj, "max_bytes", what)
    )


def parse_cluster_status(payload: bytes | memoryview) -> ClusterStatus:
    """Parse a ClusterStatusResponse (0x81), standalone or cluster form."""
    what = "cluster status"
    obj = _load_object(payload, what)
    peers = obj.get("peer_states", {})
    if not isinstance(peers, dict) or not all(isinstance(v, str) for v in peers.values()):
        raise ProtocolError(f"{what}: 'peer_states' must map ids to state strings")
    mode = obj.get("mode")
    if mode is not None and not isinstance(mode, str):
        raise ProtocolError(f"{what}: 'mode' must be a string")
    return ClusterStatus(
        node_id=_int(obj, "node_id", what),
        is_leader=_bool(obj, "is_leader", what),
        leader_id=_optional_int(obj, "leader_id", what),
        current_term=_int(obj, "current_term", what),
        node_count=_int(obj, "node_count", what),
        healthy_nodes=_int(obj, "healthy_nodes", what),
        quorum_available=_bool(obj, "quorum_available", what),
        peer_states=MappingProxyType({str(k): str(v) for k, v in peers.items()}),
        mode=mode,
    )


def parse_fetch_response(payload: bytes | memoryview) -> FetchResult:
    """Parse a FetchResponse (0x11): u64 next_offset, u32 bytes, u32 record_count, data.

    Raises:
        ProtocolError: Shorter than 16 bytes, or bytes_returned differs from the data length.
    """
    if len(payload) < _FETCH_RESPONSE.size:
        raise ProtocolError(f"fetch response of {len(payload)} bytes, need at least 16")
    next_offset, returned, record_count = _FETCH_RESPONSE.unpack_from(payload)
    data = payload[_FETCH_RESPONSE.size :]
    if returned != len(data):
        raise ProtocolError(f"fetch response says {returned} bytes but carries {len(data)}")
    return FetchResult(next_offset, record_count, data)


def parse_catching_up(payload: bytes | memoryview) -> int:
    """Parse a CatchingUp (0x12) payload: the server's total bytes for the topic."""
    if len(payload) < _U64.size:
        raise ProtocolError(f"CatchingUp payload of {len(payload)} bytes, need 8")
    return int(_U64.unpack_from(payload)[0])


def _consumer_offset(payload: bytes | memoryview, what: str) -> tuple[int, int]:
    if len(payload) < _CONSUMER_OFFSET.size:
        raise ProtocolError(f"{what} payload of {len(payload)} bytes, need 16")
    consumer_id, offset = _CONSUMER_OFFSET.unpack_from(payload)
    return consumer_id, offset


def parse_subscribe_ack(payload: bytes | memoryview) -> SubscribeAck:
    """Parse a SubscribeAck (0x23): u64 consumer_id, u64 offset."""
    return SubscribeAck(*_consumer_offset(payload, "SubscribeAck"))


def parse_commit_ack(payload: bytes | memoryview) -> CommitAck:
    """Parse a CommitAck (0x24): u64 consumer_id, u64 offset."""
    return CommitAck(*_consumer_offset(payload, "CommitAck"))


def parse_auth_response(payload: bytes | memoryview) -> AuthResult:
    """Parse an AuthenticateResponse (0x09): status byte (1 ok, 0 refused), then text."""
    if len(payload) < 1:
        raise ProtocolError("empty AuthenticateResponse")
    return AuthResult(payload[0] == 1, bytes(payload[1:]).decode("utf-8", "replace"))


def parse_error_response(payload: bytes | memoryview) -> LanceError:
    """Turn an ErrorResponse (0xFF) text into the matching `LanceError` (not raised)."""
    return texts.error_for_text(bytes(payload).decode("utf-8", "replace"))


# --- request parsers (server) -------------------------------------------------------------


def parse_create_topic_request(payload: bytes | memoryview) -> str:
    """CreateTopic: the name, decoded lossily as UTF-8 as the server does.

    Raises:
        InvalidTopicNameError: An empty payload (`Topic name required`). The name's characters
            are not checked here; use `validate_topic_name`.
    """
    if not payload:
        raise texts.NAME_REQUIRED.error_for()
    return bytes(payload).decode("utf-8", "replace")


def parse_authenticate_request(payload: bytes | memoryview) -> str:
    """Authenticate: the token as UTF-8.

    The server answers the failures below with an AuthenticateResponse (status 0 and the
    error's `server_text`), not with an ErrorResponse (PROTOCOL.md §4.6).

    Raises:
        AuthenticationError: `No token provided` for an empty payload, `Invalid token
            encoding` when it is not UTF-8.
    """
    if not payload:
        raise texts.NO_TOKEN.error_for()
    try:
        return bytes(payload).decode()
    except UnicodeDecodeError:
        raise texts.INVALID_TOKEN_ENCODING.error_for() from None


def parse_topic_id_request(payload: bytes | memoryview) -> int:
    """DeleteTopic / GetTopic: u32 topic_id; a payload under 4 bytes reads as id 0."""
    return int(_U32.unpack_from(payload)[0]) if len(payload) >= _U32.size else 0


def parse_set_retention_request(payload: bytes | memoryview) -> SetRetentionRequest:
    """SetRetention: at least 20 bytes, else `Invalid set retention payload`."""
    if len(payload) < _SET_RETENTION.size:
        raise texts.SET_RETENTION_PAYLOAD.error_for()
    return SetRetentionRequest(*_SET_RETENTION.unpack_from(payload))


def parse_create_topic_with_retention_request(
    payload: bytes | memoryview,
) -> CreateTopicWithRetentionRequest:
    """CreateTopicWithRetention: the server's two length checks, in its order.

    Raises:
        InvalidRequestError: `Invalid create topic payload` under 18 bytes;
            `Invalid payload length` when the name runs past the payload.
    """
    if len(payload) < _NAME_LENGTH.size + _RETENTION_VALUES.size:
        raise texts.CREATE_TOPIC_PAYLOAD.error_for()
    (name_length,) = _NAME_LENGTH.unpack_from(payload)
    end = _NAME_LENGTH.size + name_length
    if end + _RETENTION_VALUES.size > len(payload):
        raise texts.PAYLOAD_LENGTH.error_for()
    name = bytes(payload[_NAME_LENGTH.size : end]).decode("utf-8", "replace")
    max_age, max_bytes = _RETENTION_VALUES.unpack_from(payload, end)
    return CreateTopicWithRetentionRequest(name, max_age, max_bytes)


def parse_fetch_request(payload: bytes | memoryview) -> FetchRequest:
    """Fetch: the server's exact texts for an empty or short payload."""
    if not payload:
        raise texts.FETCH_PAYLOAD_REQUIRED.error_for()
    if len(payload) < _FETCH.size:
        raise texts.FETCH_PAYLOAD_TOO_SMALL.error_for()
    return FetchRequest(*_FETCH.unpack_from(payload))


def parse_subscribe_request(payload: bytes | memoryview) -> SubscribeRequest:
    """Subscribe: at least 24 bytes, else `Invalid subscribe payload`."""
    if len(payload) < _SUBSCRIBE.size:
        raise texts.SUBSCRIBE_PAYLOAD.error_for()
    return SubscribeRequest(*_SUBSCRIBE.unpack_from(payload))


def parse_unsubscribe_request(payload: bytes | memoryview) -> UnsubscribeRequest:
    """Unsubscribe: at least 12 bytes, else `Invalid unsubscribe payload`."""
    if len(payload) < _UNSUBSCRIBE.size:
        raise texts.UNSUBSCRIBE_PAYLOAD.error_for()
    return UnsubscribeRequest(*_UNSUBSCRIBE.unpack_from(payload))


def parse_commit_offset_request(payload: bytes | memoryview) -> CommitOffsetRequest:
    """CommitOffset: at least 20 bytes, else `Invalid commit offset payload`."""
    if len(payload) < _COMMIT.size:
        raise texts.COMMIT_OFFSET_PAYLOAD.error_for()
    return CommitOffsetRequest(*_COMMIT.unpack_from(payload))


# --- response encoders (server) -----------------------------------------------------------


def topic_json(topic: TopicInfo) -> bytes:
    """CreateTopic / GetTopic body; with retention, the CreateTopicWithRetention body."""
    body: dict[str, object] = {
        "created_at": topic.created_at,
        "id": topic.id,
        "name": topic.name,
        "topic_epoch": topic.topic_epoch,
    }
    if topic.retention is not None:
        body["max_age_secs"] = topic.retention.max_age_secs
        body["max_bytes"] = topic.retention.max_bytes
    return _compact(body, sort_keys=True)


def topic_list_json(topics: list[TopicInfo]) -> bytes:
    """ListTopics body: keys in struct order id, name, created_at, topic_epoch; no retention."""
    entries = [
        {"id": t.id, "name": t.name, "created_at": t.created_at, "topic_epoch": t.topic_epoch}
        for t in topics
    ]
    return _compact({"topics": entries}, sort_keys=False)


def deleted_json(topic_id: int) -> bytes:
    """DeleteTopic body: `{"deleted":<id>}`."""
    return _compact({"deleted": topic_id}, sort_keys=True)


def retention_json(topic_id: int, max_age_secs: int, max_bytes: int) -> bytes:
    """SetRetention body: `{"max_age_secs":..,"max_bytes":..,"topic_id":..}`."""
    body = {"max_age_secs": max_age_secs, "max_bytes": max_bytes, "topic_id": topic_id}
    return _compact(body, sort_keys=True)


def cluster_status_json(status: ClusterStatus) -> bytes:
    """ClusterStatusResponse body; `mode` is present only when set (standalone)."""
    body: dict[str, object] = {
        "current_term": status.current_term,
        "healthy_nodes": status.healthy_nodes,
        "is_leader": status.is_leader,
        "leader_id": status.leader_id,
        "node_count": status.node_count,
        "node_id": status.node_id,
        "peer_states": dict(status.peer_states),
        "quorum_available": status.quorum_available,
    }
    if status.mode is not None:
        body["mode"] = status.mode
    return _compact(body, sort_keys=True)


def encode_fetch_response(next_offset: int, data: bytes | memoryview) -> list[bytes | memoryview]:
    """FetchResponse payload parts: the 16-byte header, then the data (not copied).

    Returns:
        `[header, data]`; join them, or hand them to `writelines`, after the frame header.
    """
    header = _FETCH_RESPONSE.pack(next_offset, len(data), 1 if data else 0)
    return [header, data]


def encode_catching_up(server_total: int) -> bytes:
    """CatchingUp payload: u64 server total bytes."""
    return _U64.pack(server_total)


def encode_consumer_offset(consumer_id: int, offset: int) -> bytes:
    """SubscribeAck / CommitAck payload: u64 consumer_id, u64 offset."""
    return _CONSUMER_OFFSET.pack(consumer_id, offset)


def encode_auth_response(result: AuthResult) -> bytes:
    """AuthenticateResponse payload: status byte, then the text."""
    return bytes((1 if result.ok else 0,)) + result.message.encode()


def encode_error_response(text: str) -> bytes:
    """ErrorResponse (0xFF) payload: the text as plain UTF-8, no JSON (§4.4)."""
    return text.encode()
