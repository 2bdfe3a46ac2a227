"""Control payloads: request builders vs server parsers, server encoders vs client parsers."""

from __future__ import annotations

import contextlib
import json
import string
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lnc_client.errors import (
    AuthenticationError,
    InvalidRequestError,
    InvalidTopicNameError,
    LanceError,
    ProtocolError,
    error_from_server_text,
)
from lnc_client.protocol import control as c

U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFFFFFF)
U64 = st.integers(0, 2**64 - 1)
NAMES = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=30)
TRAILING = st.binary(max_size=8)
FAST = settings(max_examples=50, deadline=None)

topics = st.builds(
    c.TopicInfo,
    id=U32,
    name=NAMES,
    created_at=U64,
    topic_epoch=st.just(1),
    retention=st.none() | st.builds(c.RetentionInfo, U64, U64),
)
statuses = st.builds(
    c.ClusterStatus,
    node_id=U64,
    is_leader=st.booleans(),
    leader_id=st.none() | U64,
    current_term=U64,
    node_count=U32,
    healthy_nodes=U32,
    quorum_available=st.booleans(),
    peer_states=st.dictionaries(
        st.integers(0, 99).map(str),
        st.sampled_from(["Disconnected", "Connecting", "Connected", "Failed"]),
        max_size=4,
    ),
    mode=st.none() | st.just("standalone"),
)


# --- requests: builder -> server parser ---------------------------------------------------


@FAST
@given(NAMES | st.text(min_size=1))
def test_create_topic_round_trip(name: str) -> None:
    assert c.create_topic_payload(name) == name.encode()
    assert c.parse_create_topic_request(c.create_topic_payload(name)) == name


def test_create_topic_request_edge_cases() -> None:
    with pytest.raises(InvalidTopicNameError) as info:
        c.parse_create_topic_request(b"")
    assert info.value.server_text == "Topic name required"
    assert c.parse_create_topic_request(b"a\xffb") == "a\ufffdb"  # decoded lossily


@FAST
@given(U32, TRAILING)
def test_topic_id_round_trip(topic_id: int, trailing: bytes) -> None:
    payload = c.topic_id_payload(topic_id)
    assert payload == topic_id.to_bytes(4, "little")
    assert c.parse_topic_id_request(payload + trailing) == topic_id


@pytest.mark.parametrize("payload", [b"", b"\x01", b"\x01\x02\x03"])
def test_short_topic_id_reads_as_zero(payload: bytes) -> None:
    assert c.parse_topic_id_request(payload) == 0


@FAST
@given(U32, U64, U64, TRAILING)
def test_set_retention_round_trip(topic: int, age: int, size: int, trailing: bytes) -> None:
    payload = c.set_retention_payload(topic, age, size)
    assert len(payload) == 20
    assert c.parse_set_retention_request(payload + trailing) == c.SetRetentionRequest(
        topic, age, size
    )


@FAST
@given(st.text(max_size=40), U64, U64, TRAILING)
def test_create_topic_with_retention_round_trip(
    name: str, age: int, size: int, trailing: bytes
) -> None:
    payload = c.create_topic_with_retention_payload(name, age, size)
    assert payload[:2] == len(name.encode()).to_bytes(2, "little")
    assert c.parse_create_topic_with_retention_request(
        payload + trailing
    ) == c.CreateTopicWithRetentionRequest(name, age, size)


def test_create_topic_with_retention_name_limit() -> None:
    with pytest.raises(ValueError, match="65535"):
        c.create_topic_with_retention_payload("x" * 65536, 0, 0)


@FAST
@given(st.text(min_size=1))
def test_authenticate_round_trip(token: str) -> None:
    assert c.parse_authenticate_request(c.authenticate_payload(token)) == token


@pytest.mark.parametrize(
    ("payload", "text"), [(b"", "No token provided"), (b"\xff\xfe", "Invalid token encoding")]
)
def test_authenticate_request_failures(payload: bytes, text: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        c.parse_authenticate_request(payload)
    assert info.value.server_text == text


@FAST
@given(U32, U64, U32, TRAILING)
def test_fetch_round_trip(topic: int, offset: int, max_bytes: int, trailing: bytes) -> None:
    payload = c.fetch_payload(topic, offset, max_bytes)
    assert len(payload) == 16
    assert c.parse_fetch_request(payload + trailing) == c.FetchRequest(topic, offset, max_bytes)


@FAST
@given(U32, U64, U32, U64, TRAILING)
def test_subscribe_round_trip(
    topic: int, offset: int, max_batch: int, consumer: int, trailing: bytes
) -> None:
    payload = c.subscribe_payload(topic, offset, max_batch, consumer)
    assert len(payload) == 24
    assert c.parse_subscribe_request(payload + trailing) == c.SubscribeRequest(
        topic, offset, max_batch, consumer
    )


@FAST
@given(U32, U64, TRAILING)
def test_unsubscribe_round_trip(topic: int, consumer: int, trailing: bytes) -> None:
    payload = c.unsubscribe_payload(topic, consumer)
    assert len(payload) == 12
    assert c.parse_unsubscribe_request(payload + trailing) == c.UnsubscribeRequest(topic, consumer)


@FAST
@given(U32, U64, U64, TRAILING)
def test_commit_offset_round_trip(topic: int, consumer: int, offset: int, trailing: bytes) -> None:
    payload = c.commit_offset_payload(topic, consumer, offset)
    assert len(payload) == 20
    assert c.parse_commit_offset_request(payload + trailing) == c.CommitOffsetRequest(
        topic, consumer, offset
    )


SHORT_REQUESTS: list[tuple[Callable[[bytes], object], int, str]] = [
    (c.parse_set_retention_request, 20, "Invalid set retention payload"),
    (c.parse_create_topic_with_retention_request, 18, "Invalid create topic payload"),
    (c.parse_subscribe_request, 24, "Invalid subscribe payload"),
    (c.parse_unsubscribe_request, 12, "Invalid unsubscribe payload"),
    (c.parse_commit_offset_request, 20, "Invalid commit offset payload"),
    (c.parse_fetch_request, 16, "Protocol error: Fetch request payload too small"),
]


@pytest.mark.parametrize(("parse", "minimum", "text"), SHORT_REQUESTS)
def test_short_request_payloads_give_the_server_text(
    parse: Callable[[bytes], object], minimum: int, text: str
) -> None:
    for length in range(1, minimum):
        with pytest.raises(InvalidRequestError) as info:
            parse(b"\x00" * length)
        assert info.value.server_text == text
        # the client maps the text back to the same class
        assert type(error_from_server_text(text)) is InvalidRequestError
    parse(b"\x00" * minimum)


def test_empty_fetch_request_text() -> None:
    with pytest.raises(InvalidRequestError) as info:
        c.parse_fetch_request(b"")
    assert info.value.server_text == "Fetch request payload required"


def test_create_topic_with_retention_name_past_payload() -> None:
    payload = (3).to_bytes(2, "little") + b"ab" + bytes(16)  # 20 bytes, needs 21
    with pytest.raises(InvalidRequestError) as info:
        c.parse_create_topic_with_retention_request(payload)
    assert info.value.server_text == "Invalid payload length"
    empty_name = c.create_topic_with_retention_payload("", 1, 2)
    assert c.parse_create_topic_with_retention_request(empty_name).name == ""


# --- responses: server encoder -> client parser -------------------------------------------


@FAST
@given(topics)
def test_topic_response_round_trip(topic: c.TopicInfo) -> None:
    assert c.parse_topic_response(c.topic_json(topic)) == topic
    assert c.parse_topic_response(memoryview(c.topic_json(topic))) == topic


@FAST
@given(st.lists(topics, max_size=5))
def test_topic_list_round_trip(topic_list: list[c.TopicInfo]) -> None:
    without_retention = [c.TopicInfo(t.id, t.name, t.created_at, t.topic_epoch) for t in topic_list]
    assert c.parse_topic_list(c.topic_list_json(topic_list)) == without_retention


@FAST
@given(U64, U64, U64)
def test_deleted_and_retention_round_trip(topic: int, age: int, size: int) -> None:
    assert c.parse_deleted(c.deleted_json(topic)) == topic
    assert c.parse_retention_response(c.retention_json(topic, age, size)) == c.RetentionResult(
        topic, age, size
    )


@FAST
@given(statuses)
def test_cluster_status_round_trip(status: c.ClusterStatus) -> None:
    parsed = c.parse_cluster_status(c.cluster_status_json(status))
    assert parsed == status
    assert parsed.is_standalone == (status.mode == "standalone")


@FAST
@given(U64, st.binary(max_size=100))
def test_fetch_response_round_trip(next_offset: int, data: bytes) -> None:
    parts = c.encode_fetch_response(next_offset, data)
    assert parts[1] is data  # the data is not copied
    result = c.parse_fetch_response(memoryview(b"".join(parts)))
    assert result.next_offset == next_offset
    assert result.record_count == (1 if data else 0)
    assert result.bytes_returned == len(data)
    assert bytes(result.data) == data
    assert isinstance(result.data, memoryview)


@FAST
@given(U64, U64)
def test_binary_response_round_trips(first: int, second: int) -> None:
    assert c.parse_catching_up(c.encode_catching_up(first)) == first
    assert c.parse_subscribe_ack(c.encode_consumer_offset(first, second)) == c.SubscribeAck(
        first, second
    )
    assert c.parse_commit_ack(c.encode_consumer_offset(first, second)) == c.CommitAck(first, second)


@FAST
@given(st.booleans(), st.text())
def test_auth_response_round_trip(ok: bool, message: str) -> None:
    result = c.AuthResult(ok, message)
    assert c.parse_auth_response(c.encode_auth_response(result)) == result


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\x01Authenticated", c.AuthResult(True, "Authenticated")),
        (b"\x00Invalid token", c.AuthResult(False, "Invalid token")),
        (b"\x00No token provided", c.AuthResult(False, "No token provided")),
        (b"\x00Invalid token encoding", c.AuthResult(False, "Invalid token encoding")),
    ],
)
def test_auth_response_texts(payload: bytes, expected: c.AuthResult) -> None:
    assert c.parse_auth_response(payload) == expected


@FAST
@given(st.text())
def test_error_response_round_trip(text: str) -> None:
    error = c.parse_error_response(c.encode_error_response(text))
    assert error.server_text == text


# --- exact JSON of PROTOCOL.md 4.3 --------------------------------------------------------


def test_exact_json_bodies() -> None:
    topic = c.TopicInfo(1, "my-events", created_at=1706918400)
    assert c.topic_json(topic) == (
        b'{"created_at":1706918400,"id":1,"name":"my-events","topic_epoch":1}'
    )
    with_retention = c.TopicInfo(2, "b", 5, 1, c.RetentionInfo(86400, 0))
    assert c.topic_json(with_retention) == (
        b'{"created_at":5,"id":2,"max_age_secs":86400,"max_bytes":0,"name":"b","topic_epoch":1}'
    )
    assert c.topic_list_json([c.TopicInfo(1, "a", 5, 1, c.RetentionInfo(1, 2))]) == (
        b'{"topics":[{"id":1,"name":"a","created_at":5,"topic_epoch":1}]}'
    )
    assert c.topic_list_json([]) == b'{"topics":[]}'
    assert c.deleted_json(5) == b'{"deleted":5}'
    assert c.retention_json(1, 86400, 1073741824) == (
        b'{"max_age_secs":86400,"max_bytes":1073741824,"topic_id":1}'
    )
    standalone = c.ClusterStatus(0, True, 0, 0, 1, 1, True, mode="standalone")
    assert c.cluster_status_json(standalone) == (
        b'{"current_term":0,"healthy_nodes":1,"is_leader":true,"leader_id":0,'
        b'"mode":"standalone","node_count":1,"node_id":0,"peer_states":{},'
        b'"quorum_available":true}'
    )
    cluster = c.ClusterStatus(1, False, None, 3, 2, 2, True, {"2": "Connected"})
    assert c.cluster_status_json(cluster) == (
        b'{"current_term":3,"healthy_nodes":2,"is_leader":false,"leader_id":null,'
        b'"node_count":2,"node_id":1,"peer_states":{"2":"Connected"},"quorum_available":true}'
    )
    assert c.parse_cluster_status(c.cluster_status_json(cluster)).mode is None


def test_topic_info_item_access() -> None:
    topic = c.TopicInfo(3, "x", 9)
    assert (topic["id"], topic["name"], topic["created_at"], topic["topic_epoch"]) == (3, "x", 9, 1)
    assert topic["retention"] is None
    with pytest.raises(KeyError):
        topic["nope"]


# --- tolerant and strict JSON parsing -----------------------------------------------------

TOPIC = {"created_at": 5, "id": 1, "name": "a", "topic_epoch": 1}
STATUS = json.loads(c.cluster_status_json(c.ClusterStatus(0, True, 0, 0, 1, 1, True)))
JSON_PARSERS: list[tuple[Callable[[bytes], object], dict[str, object]]] = [
    (c.parse_topic_response, TOPIC),
    (c.parse_topic_list, {"topics": [TOPIC]}),
    (c.parse_deleted, {"deleted": 5}),
    (c.parse_retention_response, {"max_age_secs": 1, "max_bytes": 2, "topic_id": 3}),
    (c.parse_cluster_status, STATUS),
]


def _dump(value: object) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(("parse", "good"), JSON_PARSERS)
def test_json_parsers_tolerate_extra_keys(
    parse: Callable[[bytes], object], good: dict[str, object]
) -> None:
    assert parse(_dump({**good, "future_key": [1, {"x": None}]})) == parse(_dump(good))


def test_topic_parsers_tolerate_old_optional_keys() -> None:
    assert c.parse_topic_response(b'{"id":1,"name":"a"}') == c.TopicInfo(1, "a", 0, 1)
    nested = {**TOPIC, "retention": {"max_age_secs": 3, "max_bytes": 4}}
    assert c.parse_topic_response(_dump(nested)).retention == c.RetentionInfo(3, 4)
    assert c.parse_topic_response(_dump({**TOPIC, "retention": None})).retention is None
    listed = c.parse_topic_list(_dump({"topics": [TOPIC, {**TOPIC, "extra": 1}]}))
    assert [t.id for t in listed] == [1, 1]


BAD_VALUES: list[object] = [None, True, False, -1, 1.0, "1", [1], {"v": 1}, 2**64]


@pytest.mark.parametrize(("parse", "good"), JSON_PARSERS)
def test_json_parsers_reject_missing_and_mistyped_keys(
    parse: Callable[[bytes], object], good: dict[str, object]
) -> None:
    nested = "topics" in good
    target = good["topics"][0] if nested else good
    assert isinstance(target, dict)
    for key in list(target):
        if key in ("created_at", "topic_epoch", "peer_states", "leader_id"):
            continue  # optional keys
        broken = {k: v for k, v in target.items() if k != key}
        with pytest.raises(ProtocolError):
            parse(_dump({"topics": [broken]} if nested else broken))
        expected_type = type(target[key])
        for bad in BAD_VALUES:
            if type(bad) is expected_type and bad != 2**64:
                continue
            mistyped = {**target, key: bad}
            with pytest.raises(ProtocolError):
                parse(_dump({"topics": [mistyped]} if nested else mistyped))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"null",
        b"5",
        b'"text"',
        b"[" * 100_000,
        b'{"a":' * 50_000,
        b'{"id": 1e400, "name": "a"}',
        b'{"id": NaN, "name": "a"}',
        b'{"id": 1, "name": 5}',
        b'{"id": true, "name": "a"}',
        b'{"id": 1, "name": "a", "created_at": false}',
        b'{"id": 1, "name": "a", "retention": 5}',
        b'{"id": 1, "name": "a", "retention": {"max_age_secs": 1}}',
        b'{"id": 1, "name": "a", "max_bytes": 1}',
        b'{"topics": {}}',
        b'{"topics": [5]}',
        b'{"peer_states": {"1": 5}}',
        b'{"deleted": "5"}',
    ],
)
def test_malformed_json_raises_protocol_error_only(payload: bytes) -> None:
    for parse, _good in JSON_PARSERS:
        with pytest.raises(ProtocolError):
            parse(payload)


def test_cluster_status_field_checks() -> None:
    bad_peers = {**STATUS, "peer_states": {"1": 5}}
    with pytest.raises(ProtocolError, match="peer_states"):
        c.parse_cluster_status(_dump(bad_peers))
    with pytest.raises(ProtocolError, match="peer_states"):
        c.parse_cluster_status(_dump({**STATUS, "peer_states": ["x"]}))
    with pytest.raises(ProtocolError, match="mode"):
        c.parse_cluster_status(_dump({**STATUS, "mode": 1}))
    assert c.parse_cluster_status(_dump({**STATUS, "leader_id": None})).leader_id is None
    with pytest.raises(ProtocolError, match="is_leader"):
        c.parse_cluster_status(_dump({**STATUS, "is_leader": 1}))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*TOPIC, *STATUS, "topics", "deleted", "retention", "max_bytes"]),
        json_values,
        max_size=8,
    )
)
def test_random_json_objects_parse_or_raise_protocol_error(obj: dict[str, object]) -> None:
    payload = json.dumps(obj).encode()
    for parse, _good in JSON_PARSERS:
        with contextlib.suppress(ProtocolError):
            parse(payload)


# --- short binary responses ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "minimum"),
    [
        (c.parse_fetch_response, 16),
        (c.parse_catching_up, 8),
        (c.parse_subscribe_ack, 16),
        (c.parse_commit_ack, 16),
        (c.parse_auth_response, 1),
    ],
)
def test_short_binary_responses_raise_protocol_error(
    parse: Callable[[bytes], object], minimum: int
) -> None:
    for length in range(minimum):
        with pytest.raises(ProtocolError):
            parse(b"\x00" * length)


def test_fetch_response_length_mismatch() -> None:
    header, _ = c.encode_fetch_response(10, b"abcd")
    with pytest.raises(ProtocolError, match="says 4 bytes but carries 3"):
        c.parse_fetch_response(bytes(header) + b"abc")
    with pytest.raises(ProtocolError, match="says 4 bytes but carries 5"):
        c.parse_fetch_response(bytes(header) + b"abcde")


def test_tail_offset_is_u64_max() -> None:
    assert c.TAIL_OFFSET == 2**64 - 1
    assert c.fetch_payload(1, c.TAIL_OFFSET, 1)[4:12] == b"\xff" * 8


PARSERS = sorted((name for name in dir(c) if name.startswith("parse_")), key=str)


@pytest.mark.parametrize("name", PARSERS)
@settings(max_examples=80, deadline=None)
@given(data=st.binary(max_size=120))
def test_every_control_decoder_returns_or_raises_lance_error_on_any_bytes(
    name: str, data: bytes
) -> None:
    """Fuzz (issue 9): no payload makes a decoder fail with anything but a LanceError."""
    parse = getattr(c, name)
    for payload in (data, memoryview(data), b"{" + data, b'{"id":' + data):
        with contextlib.suppress(LanceError):
            parse(payload)
