"""The client side of the exchange, sans-I/O: which reply belongs to which request or batch.

`ClientExchange` is a pure state machine in the style of h11. Requests, batches and keepalives
go in and come out as the bytes to write (`send_batch`, `send_request`, `send_keepalive`, and
`data_to_send` for the keepalives the exchange sends on its own). Received bytes go in
(`receive_data`, or `get_buffer` + `buffer_updated` for a `BufferedProtocol`) and come out as
events: `BatchAcked`, `BatchRefused`, `RequestAnswered`, `RequestFailed`, `KeepaliveSeen`,
`BackpressureSeen`, and `ExchangeBroken` when the stream is out of step and must be closed.
The caller owns the transport, futures and clocks, and must write the bytes of each call
before it makes the next one, so the exchange's count of what was sent is the wire's order.

The pairing rules (PROTOCOL.md §2.7, §4):

* **Ack** -> the in-flight batch with that id. Acks are FIFO; one that overtakes an older
  batch means the older one was refused. An Ack whose id no batch has answers a pending
  Unsubscribe with that consumer id (§4.1); a batch id that a pending Unsubscribe holds is
  refused by `send_batch`, so the two never share an id.
* **Control reply** -> the oldest pending request; a reply whose code cannot answer it means
  the stream is out of step (`ExchangeBroken`). A request the caller gave up on keeps its place.
* **ErrorResponse** carries no id. With only requests or only batches waiting, it is theirs.
  With both, its text decides (`error_texts.Side`): ingest-only texts go to the batches,
  control-only texts to the oldest request. A text both can get (`FORWARD_FAILED: ...`,
  `NOT_LEADER: ...`) goes to the request when that request was sent before every in-flight
  batch. Otherwise it is placed on the batches *tentatively*: a follower forwards each batch
  as it reads it, so its `FORWARD_FAILED` for a batch precedes its reply to a later request
  (issue 8). Until the ack barrier has confirmed the placement, every later request-side
  reply is held back, so a misplaced error can never shift answers.
* **Ack barrier.** The server acks the other batches of a read chunk after an error for one
  of them, so errors for batches are settled by two keepalives in turn. Once the second echo
  is back, every batch sent before the first keepalive that is still un-acked was refused,
  and takes the errors owned by the barrier (those received before the first echo) in order;
  a refused batch left without an error gets a `ConnectionError`. When the errors outnumber
  the refused batches by exactly the tentative ones, those were the requests' replies after
  all and go to them, in order; any other surplus breaks the exchange.
* **Keepalive** -> the echo of the oldest keepalive sent; an unsolicited one is reported with
  no id and never answered (answering caused lnc-client 0.2.9's endless ping-pong, D1).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Final

from lnc_client.errors import ConnectionError, InvalidFrameError, LanceError, ProtocolError
from lnc_client.protocol.error_texts import Side, error_for_text, side_of
from lnc_client.protocol.frame import (
    KEEPALIVE_FRAME,
    MAX_PAYLOAD_SIZE,
    ControlCommand,
    Flag,
    Frame,
    FrameDecoder,
    FrameType,
    build_control_frame,
    classify,
    header_for,
)

__all__ = [
    "BackpressureSeen",
    "BatchAcked",
    "BatchRefused",
    "ClientExchange",
    "Event",
    "ExchangeBroken",
    "KeepaliveSeen",
    "RequestAnswered",
    "RequestFailed",
]

_JOIN_BELOW: Final = 64 * 1024
"""Payloads smaller than this are joined to their header (one write); larger ones are not copied."""
_CONTROL_BIT: Final = int(Flag.CONTROL)
_TOPIC_ANSWER: Final = frozenset({ControlCommand.TOPIC_RESPONSE})
_ANSWERS: Final[dict[int, frozenset[int]]] = {
    ControlCommand.GET_CLUSTER_STATUS: frozenset({ControlCommand.CLUSTER_STATUS_RESPONSE}),
    ControlCommand.AUTHENTICATE: frozenset({ControlCommand.AUTHENTICATE_RESPONSE}),
    ControlCommand.FETCH: frozenset({ControlCommand.FETCH_RESPONSE, ControlCommand.CATCHING_UP}),
    ControlCommand.SUBSCRIBE: frozenset({ControlCommand.SUBSCRIBE_ACK}),
    ControlCommand.COMMIT_OFFSET: frozenset({ControlCommand.COMMIT_ACK}),
    ControlCommand.UNSUBSCRIBE: frozenset(),
}


def _answers_for(command: int) -> frozenset[int]:
    if ControlCommand.CREATE_TOPIC <= command <= ControlCommand.CREATE_TOPIC_WITH_RETENTION:
        return _TOPIC_ANSWER
    return _ANSWERS.get(command, frozenset())


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchAcked:
    """The server acknowledged the batch: its records are durable."""

    batch_id: int


@dataclass(frozen=True, slots=True)
class BatchRefused:
    """The server refused the batch (its ErrorResponse), or never acknowledged it."""

    batch_id: int
    error: LanceError


@dataclass(frozen=True, slots=True)
class RequestAnswered:
    """The reply to request `request_id` (for Unsubscribe, its Ack frame)."""

    request_id: int
    frame: Frame


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """The server answered request `request_id` with an ErrorResponse."""

    request_id: int
    error: LanceError


@dataclass(frozen=True, slots=True)
class KeepaliveSeen:
    """The echo of keepalive `ping_id`; None for the exchange's own or an unsolicited one."""

    ping_id: int | None


@dataclass(frozen=True, slots=True)
class BackpressureSeen:
    """The server sent a Backpressure frame (the real server never does)."""


@dataclass(frozen=True, slots=True)
class ExchangeBroken:
    """The stream is out of step or corrupt: close the connection, fail every waiter."""

    error: ProtocolError


Event = (
    BatchAcked
    | BatchRefused
    | RequestAnswered
    | RequestFailed
    | KeepaliveSeen
    | BackpressureSeen
    | ExchangeBroken
)
"""What `ClientExchange.receive_data` and `buffer_updated` return."""


# --- state ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Request:
    seq: int
    command: int
    answers: frozenset[int]
    unsubscribe_id: int | None


@dataclass(slots=True)
class _Tentative:
    """An error both sides can get, placed on the batches until the barrier confirms it."""

    error: LanceError
    to_request: bool | None = None


class _Ping(Enum):
    BARRIER_FIRST = "first"
    BARRIER_SECOND = "second"


class ClientExchange:
    """The client's half of one connection's exchange; see the module docstring.

    Args:
        max_payload_size: Largest payload accepted from the server.
    """

    def __init__(self, *, max_payload_size: int = MAX_PAYLOAD_SIZE) -> None:
        self._decoder = FrameDecoder(max_payload_size=max_payload_size)
        self._seq = 0
        self._requests: deque[_Request] = deque()
        self._unsubscribe_ids: dict[int, int] = {}
        """Consumer ids of the pending Unsubscribes (their Acks carry them) and how many."""
        self._in_flight: deque[int] = deque()
        """Batch ids in send order."""
        self._sent_at: dict[int, int] = {}
        """Batch id -> the seq it was sent with."""
        self._pings: deque[tuple[int, int | _Ping]] = deque()
        self._ingest_errors: deque[LanceError | _Tentative] = deque()
        self._held: list[Frame | LanceError | _Tentative] = []
        """Request-side replies held back while a tentative placement is unconfirmed."""
        self._barrier_from = 0
        """Seq of the running barrier's first keepalive; 0 when none runs."""
        self._owned = 0
        self._output: list[bytes] = []
        self._broken = False

    # --- state --------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Batches sent and not yet settled."""
        return len(self._sent_at)

    @property
    def awaiting_echo(self) -> bool:
        """Whether a keepalive (ours or the barrier's) waits for its echo."""
        return bool(self._pings)

    # --- sending ------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def send_batch(
        self,
        topic_id: int,
        payload: bytes | bytearray,
        *,
        batch_id: int,
        record_count: int,
        timestamp_ns: int = 0,
    ) -> tuple[bytes | bytearray, ...]:
        """Return the ingest frame's parts (header and payload, joined when small) to write.

        Raises:
            ValueError: `batch_id` is in flight, or is the consumer id of a pending Unsubscribe.
        """
        if batch_id in self._sent_at:
            raise ValueError(f"batch {batch_id} is already in flight on this connection")
        if batch_id in self._unsubscribe_ids:
            raise ValueError(
                f"batch id {batch_id} is the consumer id of a pending Unsubscribe: "
                "its Ack could not be told apart"
            )
        header = header_for(
            Flag.BATCH_MODE,
            payload,
            batch_id=batch_id,
            timestamp_ns=timestamp_ns,
            record_count=record_count,
            topic_id=topic_id,
        )
        self._in_flight.append(batch_id)
        self._sent_at[batch_id] = self._next_seq()
        return (header + payload,) if len(payload) < _JOIN_BELOW else (header, payload)

    def send_request(
        self, command: ControlCommand, payload: bytes = b"", *, unsubscribe_id: int | None = None
    ) -> tuple[int, bytes]:
        """Return the request's id (for its event) and its frame to write.

        Raises:
            ValueError: UNSUBSCRIBE without `unsubscribe_id`, or with the id of a batch in
                flight (wait for it to settle first: the two Acks could not be told apart).
        """
        if command == ControlCommand.UNSUBSCRIBE and unsubscribe_id is None:
            raise ValueError("UNSUBSCRIBE needs unsubscribe_id: its answer is an Ack frame")
        if unsubscribe_id is not None:
            if unsubscribe_id in self._sent_at:
                raise ValueError(f"batch {unsubscribe_id} is in flight: let it settle first")
            self._unsubscribe_ids[unsubscribe_id] = self._unsubscribe_ids.get(unsubscribe_id, 0) + 1
        seq = self._next_seq()
        self._requests.append(_Request(seq, command, _answers_for(command), unsubscribe_id))
        return seq, build_control_frame(command, payload)

    def send_keepalive(self) -> tuple[int, bytes]:
        """Return the keepalive's id (its `KeepaliveSeen` carries it) and its frame to write."""
        seq = self._next_seq()
        self._pings.append((seq, seq))
        return seq, KEEPALIVE_FRAME

    def data_to_send(self) -> list[bytes]:
        """Take the keepalives the barrier wants written; write them before anything else."""
        output, self._output = self._output, []
        return output

    # --- receiving ----------------------------------------------------------------------------

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Writable space for the next read (`asyncio.BufferedProtocol.get_buffer`)."""
        return self._decoder.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> list[Event]:
        """Account for `nbytes` read into the last `get_buffer`; return the events."""
        if self._broken:
            return []
        try:
            frames = self._decoder.buffer_updated(nbytes)
        except InvalidFrameError as error:
            return self._receive(list(error.frames), error)
        return self._receive(frames, None)

    def receive_data(self, data: bytes) -> list[Event]:
        """Take received bytes; return the events they complete, in order.

        The bytes go through `get_buffer` and `buffer_updated`, as a transport's would.
        """
        events: list[Event] = []
        rest = memoryview(data)
        while rest and not self._broken:
            space = self.get_buffer()
            size = min(len(space), len(rest))
            space[:size] = rest[:size]
            rest = rest[size:]
            events += self.buffer_updated(size)
        return events

    def _receive(self, frames: list[Frame], fault: ProtocolError | None) -> list[Event]:
        events: list[Event] = []
        try:
            for frame in frames:
                self._on_frame(frame, events)
        except ProtocolError as error:  # raised by the pairing rules: the stream is out of step
            fault = error
        if fault is not None:
            self._broken = True
            events.append(ExchangeBroken(fault))
        return events

    def _on_frame(self, frame: Frame, events: list[Event]) -> None:
        header = frame.header
        kind = classify(header.flags, header.payload_length)
        if kind is FrameType.ACK:
            self._on_ack(header.batch_id, frame, events)
        elif kind is FrameType.CONTROL:
            if frame.command == ControlCommand.ERROR_RESPONSE:
                text = bytes(frame.payload).decode("utf-8", "replace")
                self._on_error(text, events)
            else:
                self._to_request(frame, events)
        elif kind is FrameType.KEEPALIVE:
            self._on_keepalive(events)
        elif kind is FrameType.BACKPRESSURE:
            events.append(BackpressureSeen())
        else:
            raise ProtocolError(f"unexpected {kind.name} frame from the server")

    def _on_ack(self, batch_id: int, frame: Frame, events: list[Event]) -> None:
        if self._sent_at.pop(batch_id, None) is None:
            self._to_request(frame, events)
            return
        if self._in_flight[0] == batch_id:
            self._in_flight.popleft()
        else:
            self._in_flight.remove(batch_id)
            self._start_barrier()  # an older batch was overtaken: it was refused
        events.append(BatchAcked(batch_id))

    def _on_error(self, text: str, events: list[Event]) -> None:
        error = error_for_text(text)
        if not self._in_flight:
            if not self._requests:
                raise ProtocolError(f"unsolicited error from the server: {text!r}")
            self._to_request(error, events)
            return
        if not self._requests:
            self._queue_ingest_error(error)
            return
        side = side_of(text)
        request_first = not self._held and self._requests[0].seq < self._sent_at[self._in_flight[0]]
        if side is Side.INGEST:
            self._queue_ingest_error(error)
        elif side is Side.CONTROL or request_first:
            self._to_request(error, events)
        else:
            tentative = _Tentative(error)
            self._held.append(tentative)
            self._queue_ingest_error(tentative)

    def _queue_ingest_error(self, error: LanceError | _Tentative) -> None:
        self._ingest_errors.append(error)
        self._start_barrier()

    def _to_request(self, reply: Frame | LanceError, events: list[Event]) -> None:
        if self._held:
            self._held.append(reply)
        else:
            self._deliver(reply, events)

    def _deliver(self, reply: Frame | LanceError, events: list[Event]) -> None:
        """Give `reply` to the oldest pending request, or break if it cannot answer it."""
        if not self._requests:
            what = reply.server_text if isinstance(reply, LanceError) else f"{reply.command:#04x}"
            raise ProtocolError(f"unsolicited reply from the server: {what}")
        request = self._requests[0]
        if isinstance(reply, LanceError):
            event: Event = RequestFailed(request.seq, reply)
        elif reply.header.flags & _CONTROL_BIT:
            if reply.command not in request.answers:
                raise ProtocolError(
                    f"answer {reply.command:#04x} cannot answer request {request.command:#04x}"
                )
            event = RequestAnswered(request.seq, reply)
        elif request.unsubscribe_id == reply.header.batch_id:
            event = RequestAnswered(request.seq, reply)
        else:
            raise ProtocolError(f"Ack for batch {reply.header.batch_id}, which is not in flight")
        self._requests.popleft()
        consumer_id = request.unsubscribe_id
        if consumer_id is not None:
            left = self._unsubscribe_ids.pop(consumer_id) - 1
            if left:
                self._unsubscribe_ids[consumer_id] = left
        events.append(event)

    # --- ack barrier ------------------------------------------------------------------------

    def _start_barrier(self) -> None:
        if self._barrier_from:
            return
        self._barrier_from = self._send_internal_ping(_Ping.BARRIER_FIRST)

    def _send_internal_ping(self, kind: _Ping) -> int:
        seq = self._next_seq()
        self._pings.append((seq, kind))
        self._output.append(KEEPALIVE_FRAME)
        return seq

    def _on_keepalive(self, events: list[Event]) -> None:
        if not self._pings:
            events.append(KeepaliveSeen(None))
            return
        _, kind = self._pings.popleft()
        if kind is _Ping.BARRIER_FIRST:
            # Errors received so far are for batches sent before the first keepalive; later
            # ones belong to batches sent after it, and to the next barrier.
            self._owned = len(self._ingest_errors)
            self._send_internal_ping(_Ping.BARRIER_SECOND)
        elif kind is _Ping.BARRIER_SECOND:
            before, self._barrier_from = self._barrier_from, 0
            self._settle(before, events)
            if self._ingest_errors:
                self._start_barrier()
        else:
            events.append(KeepaliveSeen(kind))

    def _settle(self, before_seq: int, events: list[Event]) -> None:
        errors = [self._ingest_errors.popleft() for _ in range(self._owned)]
        refused: list[int] = []
        while self._in_flight and self._sent_at[self._in_flight[0]] < before_seq:
            batch_id = self._in_flight.popleft()
            del self._sent_at[batch_id]
            refused.append(batch_id)
        surplus = len(errors) - len(refused)
        if surplus > 0:
            tentative = [e for e in errors if isinstance(e, _Tentative)]
            if surplus != len(tentative):
                raise ProtocolError("more ingest errors than refused batches")
            for placed in tentative:
                placed.to_request = True  # acked after all: they were the requests' replies
            errors = [e for e in errors if not isinstance(e, _Tentative)]
        for index, batch_id in enumerate(refused):
            if index < len(errors):
                error = errors[index]
                if isinstance(error, _Tentative):
                    error.to_request = False
                    error = error.error
            else:
                error = ConnectionError(f"the server never acknowledged batch {batch_id}")
            events.append(BatchRefused(batch_id, error))
        self._release(events)

    def _release(self, events: list[Event]) -> None:
        """Deliver the held replies once every tentative error in them is placed."""
        if any(isinstance(r, _Tentative) and r.to_request is None for r in self._held):
            return
        held, self._held = self._held, []
        for reply in held:
            if isinstance(reply, _Tentative):
                if reply.to_request:
                    self._deliver(reply.error, events)
            else:
                self._deliver(reply, events)
