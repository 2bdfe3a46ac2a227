"""The coordinator text protocol: exact Rust renderings, parsing, round trips, prefixes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lnc_client.groups.wire import (
    Assignments,
    CoordinatorError,
    HeartbeatAck,
    JoinAccepted,
    LeaveAcknowledged,
    Request,
    RequestKind,
    encode_reply,
    encode_request,
    parse_reply,
    parse_request,
    validate_worker_id,
)

# What `format!("{:?}", response)` gives in lnc-client/src/grouped.rs for each variant.
RUST_RENDERINGS = [
    (
        JoinAccepted("w1", 1, (1, 2, 3)),
        b'JoinAccepted { worker_id: "w1", generation: 1, assignments: [1, 2, 3] }',
    ),
    (
        JoinAccepted("w-2", 7, ()),
        b'JoinAccepted { worker_id: "w-2", generation: 7, assignments: [] }',
    ),
    (HeartbeatAck(12), b"HeartbeatAck { generation: 12 }"),
    (Assignments(3, (4,)), b"Assignments { generation: 3, assignments: [4] }"),
    (LeaveAcknowledged(), b"LeaveAcknowledged"),
    (CoordinatorError("Worker not found"), b'Error { message: "Worker not found" }'),
    (
        CoordinatorError('Unknown message: "x"\\\n'),
        b'Error { message: "Unknown message: \\"x\\"\\\\\\n" }',
    ),
]


@pytest.mark.parametrize(("reply", "wire"), RUST_RENDERINGS)
def test_replies_render_and_parse_like_rust(reply: object, wire: bytes) -> None:
    assert encode_reply(reply) == wire  # type: ignore[arg-type]
    assert parse_reply(wire) == reply


def test_requests_are_verb_colon_id() -> None:
    assert encode_request(RequestKind.JOIN, "w1") == b"JOIN:w1"
    assert encode_request(RequestKind.GET_ASSIGNMENTS, "w1") == b"GET_ASSIGNMENTS:w1"
    assert parse_request(b"HEARTBEAT: w1 \n") == Request(RequestKind.HEARTBEAT, "w1")
    assert parse_request(b"LEAVE:w1") == Request(RequestKind.LEAVE, "w1")
    assert parse_request(b"PING:w1") == CoordinatorError("Unknown message: PING:w1")
    assert parse_request(b"JOIN:  ") == CoordinatorError("Empty worker id")
    with pytest.raises(UnicodeDecodeError):
        parse_request(b"JOIN:\xff")


@pytest.mark.parametrize("bad", ["", "a b", "tab\t", "x" * 256, "nl\n", "\x00"])
def test_worker_ids_that_cannot_cross_the_wire_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="worker id"):
        validate_worker_id(bad)
    with pytest.raises(ValueError, match="worker id"):
        encode_request(RequestKind.JOIN, bad)


@pytest.mark.parametrize("wire", [w for _, w in RUST_RENDERINGS])
def test_every_proper_prefix_is_incomplete(wire: bytes) -> None:
    for end in range(1, len(wire)):
        assert parse_reply(wire[:end]) is None, wire[:end]


@pytest.mark.parametrize(
    "garbage",
    [b"Hello { x: 1 }", b"HeartbeatAck { generation: x }", b"Nope", b"HeartbeatAck { }", b"\xff"],
)
def test_garbage_is_refused(garbage: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by case
        parse_reply(garbage)


worker_ids = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp", "Co", "Cn")),
    min_size=1,
    max_size=20,
).filter(lambda s: not any(c.isspace() or not c.isprintable() for c in s))
topic_lists = st.lists(st.integers(0, 2**32 - 1), max_size=20).map(tuple)


@given(worker_ids, st.integers(0, 2**64 - 1), topic_lists)
def test_join_round_trip(worker_id: str, generation: int, topics: tuple[int, ...]) -> None:
    reply = JoinAccepted(worker_id, generation, topics)
    assert parse_reply(encode_reply(reply)) == reply
    kind = RequestKind.JOIN
    assert parse_request(encode_request(kind, worker_id)) == Request(kind, worker_id)


@given(st.text(max_size=40), st.integers(0, 2**64 - 1), topic_lists)
def test_error_and_assignment_round_trip(
    message: str, generation: int, topics: tuple[int, ...]
) -> None:
    assert parse_reply(encode_reply(CoordinatorError(message))) == CoordinatorError(message)
    assert parse_reply(encode_reply(Assignments(generation, topics))) == Assignments(
        generation, topics
    )
