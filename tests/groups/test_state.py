"""GroupState: join, leave, heartbeat, expiry and generations, with an explicit clock."""

from __future__ import annotations

from lnc_client.groups.assignment import AssignmentStrategy
from lnc_client.groups.state import GroupState
from lnc_client.groups.wire import (
    Assignments,
    CoordinatorError,
    HeartbeatAck,
    JoinAccepted,
    LeaveAcknowledged,
    Request,
    RequestKind,
)

JOIN, LEAVE, BEAT, GET = (
    RequestKind.JOIN,
    RequestKind.LEAVE,
    RequestKind.HEARTBEAT,
    RequestKind.GET_ASSIGNMENTS,
)


def make() -> GroupState:
    return GroupState([1, 2, 3, 4], AssignmentStrategy.ROUND_ROBIN, session_timeout_s=10.0)


def test_join_rebalances_and_bumps_the_generation() -> None:
    state = make()
    assert state.handle(Request(JOIN, "a"), 0.0) == JoinAccepted("a", 1, (1, 2, 3, 4))
    assert state.handle(Request(JOIN, "b"), 1.0) == JoinAccepted("b", 2, (2, 4))
    assert state.handle(Request(BEAT, "a"), 2.0) == HeartbeatAck(2)
    assert state.handle(Request(GET, "a"), 2.0) == Assignments(2, (1, 3))


def test_leave_gives_the_topics_to_the_others() -> None:
    state = make()
    state.handle(Request(JOIN, "a"), 0.0)
    state.handle(Request(JOIN, "b"), 0.0)
    assert state.handle(Request(LEAVE, "b"), 1.0) == LeaveAcknowledged()
    assert state.generation == 3
    assert state.assignments() == {"a": (1, 2, 3, 4)}
    assert state.handle(Request(LEAVE, "b"), 1.0) == LeaveAcknowledged()
    assert state.generation == 3


def test_unknown_workers_get_worker_not_found() -> None:
    state = make()
    assert state.handle(Request(BEAT, "x"), 0.0) == CoordinatorError("Worker not found")
    assert state.handle(Request(GET, "x"), 0.0) == CoordinatorError("Worker not found")


def test_a_silent_worker_expires_and_its_topics_move_at_once() -> None:
    state = make()
    state.handle(Request(JOIN, "a"), 0.0)
    state.handle(Request(JOIN, "b"), 0.0)
    state.handle(Request(BEAT, "a"), 9.0)
    assert state.expire(10.0) == []
    assert state.expire(10.5) == ["b"]
    assert state.generation == 3
    assert state.assignments() == {"a": (1, 2, 3, 4)}
    assert state.handle(Request(BEAT, "b"), 11.0) == CoordinatorError("Worker not found")


def test_rejoin_replaces_the_member_and_a_topic_change_rebalances() -> None:
    state = make()
    state.set_topics([1, 2, 3, 4, 9])
    state.set_topics([1, 2, 3, 4])
    assert state.generation == 0
    state.handle(Request(JOIN, "a"), 0.0)
    state.handle(Request(JOIN, "a"), 1.0)
    assert state.generation == 2
    assert state.assignments() == {"a": (1, 2, 3, 4)}
    state.set_topics([1, 2, 3, 4])
    assert state.generation == 2
    state.set_topics([5])
    assert (state.generation, state.assignments()) == (3, {"a": (5,)})
