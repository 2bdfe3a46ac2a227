"""The coordinator's group state machine (sans-I/O: the caller passes the clock).

`GroupState.handle(request, now)` applies one worker request and returns the reply;
`expire(now)` drops workers whose last heartbeat is older than the session timeout. Every change
of membership (join, leave, expiry) bumps the generation by one and recomputes the assignment with
the group's strategy. Workers learn of a new generation from their next heartbeat and then ask for
their assignment.

Semantics follow the Rust `GroupCoordinator` (`lnc-client/src/grouped.rs`), with one deliberate
difference: the Rust coordinator only bumps the generation when a worker times out and never
reassigns its topics (they stay orphaned until the next join or leave). Here an expiry
reassigns at once, so a dead worker's topics move within the session timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lnc_client.groups.assignment import AssignmentStrategy, assign
from lnc_client.groups.wire import (
    WORKER_NOT_FOUND,
    Assignments,
    CoordinatorError,
    HeartbeatAck,
    JoinAccepted,
    LeaveAcknowledged,
    Reply,
    Request,
    RequestKind,
)

__all__ = ["GroupState"]


@dataclass(slots=True)
class _Member:
    last_heartbeat: float
    assignments: tuple[int, ...] = ()


class GroupState:
    """Members, their topics and the generation of one consumer group.

    Args:
        topics: The group's topics, in order.
        strategy: The assignment strategy.
        session_timeout_s: A worker silent this long is dropped by `expire`.
    """

    def __init__(
        self, topics: Sequence[int], strategy: AssignmentStrategy, session_timeout_s: float
    ) -> None:
        self._topics = tuple(topics)
        self._strategy = strategy
        self._session_timeout_s = session_timeout_s
        self._members: dict[str, _Member] = {}
        self.generation = 0

    @property
    def topics(self) -> tuple[int, ...]:
        """The group's topics."""
        return self._topics

    def assignments(self) -> dict[str, tuple[int, ...]]:
        """Every worker's topics."""
        return {name: member.assignments for name, member in self._members.items()}

    def set_topics(self, topics: Sequence[int]) -> None:
        """Replace the topic list; a changed list is a new generation when workers are in."""
        if tuple(topics) != self._topics:
            self._topics = tuple(topics)
            if self._members:
                self._rebalance()

    def handle(self, request: Request, now: float) -> Reply:
        """Apply one request and return the reply to send."""
        worker_id = request.worker_id
        if request.kind is RequestKind.JOIN:
            self._members[worker_id] = _Member(now)
            self._rebalance()
            return JoinAccepted(worker_id, self.generation, self._members[worker_id].assignments)
        if request.kind is RequestKind.LEAVE:
            if self._members.pop(worker_id, None) is not None:
                self._rebalance()
            return LeaveAcknowledged()
        member = self._members.get(worker_id)
        if member is None:
            return CoordinatorError(WORKER_NOT_FOUND)
        if request.kind is RequestKind.HEARTBEAT:
            member.last_heartbeat = now
            return HeartbeatAck(self.generation)
        return Assignments(self.generation, member.assignments)

    def expire(self, now: float) -> list[str]:
        """Drop the workers silent for longer than the session timeout; return their ids."""
        limit = now - self._session_timeout_s
        dead = [name for name, m in self._members.items() if m.last_heartbeat < limit]
        for name in dead:
            del self._members[name]
        if dead:
            self._rebalance()
        return dead

    def _rebalance(self) -> None:
        self.generation += 1
        previous = {name: member.assignments for name, member in self._members.items()}
        result = assign(self._strategy, self._topics, list(self._members), previous)
        for name, member in self._members.items():
            member.assignments = result.get(name, ())
