"""One TCP or TLS connection to a Lance server: writes, one reader, and exact reply matching.

Data flow. Writers call `send_ingest` (no await: the frame goes to the transport at once) or
`await request(...)` for a control command. The transport reads straight into the
`FrameDecoder`'s buffer (`asyncio.BufferedProtocol`), and `_dispatch` routes every frame:

* **Ack** -> the in-flight ingest with that batch id (acks are FIFO, PROTOCOL.md §2.7), or the
  pending Unsubscribe whose consumer id it carries (§4.1: Unsubscribe is answered by an Ack).
  The two never share an id: an Unsubscribe first waits for an in-flight batch with its
  consumer id to settle, and `send_ingest` refuses a batch id that a pending Unsubscribe holds.
* **Control** -> the oldest pending request. Requests are answered in the order they were sent,
  so a request that timed out or was cancelled keeps its place in the queue and its late answer
  is dropped: later requests never receive an earlier request's answer. An answer whose code
  cannot answer the request at the head means the stream is out of step: the connection is reset.
* **ErrorResponse** -> it carries no batch id (§2.7). When only control requests or only ingests
  wait, it belongs to them. When both wait, its text decides: texts only ingests can get
  (`Unknown topic`, `Authentication required`, `FORWARD_FAILED: Unknown topic (metadata
  convergence)`) go to the ingests, and every text an ingest can never get (all of §4.4 but
  those, e.g. `Topic 'x' already exists`) to the oldest request. Only for the texts both can get
  (`FORWARD_FAILED: ...`, `NOT_LEADER: ...`) does the order in which frames were sent decide: a
  request sent before every in-flight ingest is answered first; otherwise the error cannot be
  placed and the connection is reset. An error
  for an ingest is settled exactly: the server acks the other batches of the same read chunk
  after the error, so the connection sends two keepalives in turn (an *ack barrier*); once the
  second echo is back, every batch sent before the first keepalive that is still un-acked is one
  the server refused, and gets the errors in order.
* **Keepalive** -> the echo of our own keepalive; an unsolicited one is ignored. A keepalive is
  never answered (answering echoes caused lnc-client 0.2.9's endless ping-pong, D1).
* **Backpressure** -> the `on_backpressure` callback (the real server never sends it).

Every wait is bounded: connect and authenticate by `connect_timeout_s`, each request by its
timeout, and a keepalive that gets no echo within `request_timeout_s` closes the connection.
When the connection is lost, every waiter fails with a retryable `ConnectionError`.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from lnc_client._lwp_connection import LwpConnection, connect
from lnc_client.config import Address, ConnectionOptions, parse_address
from lnc_client.errors import (
    AuthenticationError,
    ConnectionError,
    InvalidFrameError,
    LanceError,
    ProtocolError,
    TimeoutError,
)
from lnc_client.protocol.control import (
    authenticate_payload,
    parse_auth_response,
    parse_error_response,
)
from lnc_client.protocol.error_texts import Side, side_of
from lnc_client.protocol.frame import (
    KEEPALIVE_FRAME,
    ControlCommand,
    Flag,
    Frame,
    FrameDecoder,
    FrameType,
    build_control_frame,
    classify,
    header_for,
)

__all__ = ["Connection", "IngestCallback", "LwpConnection", "connect"]

log = logging.getLogger(__name__)
"""This module's logger (`lnc_client.connection`), also lnc-client 0.2.9's `log`."""
R = TypeVar("R")

IngestCallback = Callable[[int, LanceError | None], None]
"""Called once per ingest with (batch_id, None) on its ack or (batch_id, error) on failure."""

_ANSWERS: Final[dict[int, frozenset[int]]] = {
    ControlCommand.GET_CLUSTER_STATUS: frozenset({ControlCommand.CLUSTER_STATUS_RESPONSE}),
    ControlCommand.AUTHENTICATE: frozenset({ControlCommand.AUTHENTICATE_RESPONSE}),
    ControlCommand.FETCH: frozenset({ControlCommand.FETCH_RESPONSE, ControlCommand.CATCHING_UP}),
    ControlCommand.SUBSCRIBE: frozenset({ControlCommand.SUBSCRIBE_ACK}),
    ControlCommand.COMMIT_OFFSET: frozenset({ControlCommand.COMMIT_ACK}),
    ControlCommand.UNSUBSCRIBE: frozenset(),
}
_TOPIC_ANSWER: Final = frozenset({ControlCommand.TOPIC_RESPONSE})
_JOIN_BELOW: Final = 64 * 1024
"""Payloads smaller than this are joined to their header (one write); larger ones are not copied."""


def _answers_for(command: int) -> frozenset[int]:
    if ControlCommand.CREATE_TOPIC <= command <= ControlCommand.CREATE_TOPIC_WITH_RETENTION:
        return _TOPIC_ANSWER
    return _ANSWERS.get(command, frozenset())


@dataclass(slots=True)
class _Request:
    command: int
    seq: int
    future: asyncio.Future[Frame]
    answers: frozenset[int]
    unsubscribe_id: int | None


@dataclass(slots=True)
class _InFlight:
    batch_id: int
    seq: int
    on_done: IngestCallback


class _Reader(asyncio.BufferedProtocol):
    """The transport-facing half: feeds the decoder and hands frames to the connection."""

    def __init__(self, connection: Connection, max_payload: int) -> None:
        self._connection = connection
        self._decoder = FrameDecoder(max_payload_size=max_payload)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._connection._transport_ready(transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._decoder.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        try:
            frames = self._decoder.buffer_updated(nbytes)
        except InvalidFrameError as error:
            self._connection.abort(error)
            return
        self._connection._dispatch_all(frames)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._connection._lost(exc)

    def pause_writing(self) -> None:
        self._connection._writable.clear()

    def resume_writing(self) -> None:
        self._connection._writable.set()


class Connection:
    """One connection to a Lance server. Create it with `Connection.open`.

    Attributes:
        address: The address connected to.
        options: The connection's options.
    """

    def __init__(
        self,
        address: Address,
        options: ConnectionOptions,
        *,
        on_backpressure: Callable[[], None] | None = None,
    ) -> None:
        self.address = address
        self.options = options
        self._on_backpressure = on_backpressure
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = self._loop.create_future()
        self._failure: LanceError | None = None
        self._seq = 0
        self._requests: deque[_Request] = deque()
        self._unsubscribe_ids: dict[int, int] = {}
        """Consumer ids of the pending Unsubscribes (their Acks carry them) and how many."""
        self._in_flight: deque[_InFlight] = deque()
        self._in_flight_ids: dict[int, _InFlight] = {}
        self._pings: deque[tuple[int, Callable[[], None] | None]] = deque()
        self._ingest_errors: deque[LanceError] = deque()
        self._barrier_running = False
        self._last_traffic = self._loop.time()
        self._keepalive_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        address: str | Address,
        options: ConnectionOptions | None = None,
        *,
        on_backpressure: Callable[[], None] | None = None,
    ) -> Connection:
        """Connect, authenticate if a token is configured, and start the keepalive.

        Args:
            address: `host:port`, `[v6]:port` or a bare host.
            options: Timeouts, TLS and auth; defaults apply when None.
            on_backpressure: Called for each Backpressure frame received.

        Raises:
            ConnectionError: The server could not be reached.
            TimeoutError: Connecting or authenticating took longer than `connect_timeout_s`.
            AuthenticationError: The server refused the token.
        """
        options = options or ConnectionOptions()
        target = parse_address(address)
        connection = cls(target, options, on_backpressure=on_backpressure)
        try:
            async with asyncio.timeout(options.connect_timeout_s):
                await connection._connect()
        except builtins.TimeoutError as error:
            connection.abort(TimeoutError(f"connecting to {target} timed out"))
            raise TimeoutError(
                f"connecting to {target} took longer than {options.connect_timeout_s} s"
            ) from error
        except BaseException:
            connection.abort(ConnectionError(f"connecting to {target} failed"))
            raise
        return connection

    async def _connect(self) -> None:
        options = self.options
        server_hostname = None
        if options.ssl_context is not None:
            server_hostname = options.server_hostname or self.address.host
        try:
            await self._loop.create_connection(
                lambda: _Reader(self, options.max_frame_payload),
                self.address.host,
                self.address.port,
                ssl=options.ssl_context,
                server_hostname=server_hostname,
            )
        except OSError as error:
            raise ConnectionError(f"cannot connect to {self.address}: {error}") from error
        if options.auth_token is not None:
            reply = await self.request(
                ControlCommand.AUTHENTICATE, authenticate_payload(options.auth_token)
            )
            result = parse_auth_response(reply.payload)
            if not result.ok:
                raise AuthenticationError(server_text=result.message)
        if options.keepalive_interval_s > 0:
            self._keepalive_task = self._loop.create_task(self._keepalive_loop())

    def _transport_ready(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # --- state ------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether the connection can still send."""
        return self._failure is None and self._transport is not None

    @property
    def writable(self) -> bool:
        """False while the transport's write buffer is above its high-water mark."""
        return self._writable.is_set()

    @property
    def in_flight(self) -> int:
        """Ingest batches sent and not yet settled."""
        return len(self._in_flight)

    @property
    def failure(self) -> LanceError | None:
        """Why the connection closed, once it has."""
        return self._failure

    async def wait_writable(self, timeout: float | None = None) -> None:
        """Wait until the transport accepts more data.

        Raises:
            TimeoutError: The peer did not read for `timeout` seconds (default: request timeout).
            ConnectionError: The connection closed meanwhile.
        """
        self._raise_if_closed()
        if self._writable.is_set():
            return
        limit = self.options.request_timeout_s if timeout is None else timeout
        waiter = self._loop.create_task(self._writable.wait())
        try:
            done, _ = await asyncio.wait({waiter, self._closed}, timeout=limit)
        finally:
            waiter.cancel()
        self._raise_if_closed()
        if not done:
            raise TimeoutError(f"the server did not read for {limit} s")

    async def wait_closed(self) -> None:
        """Wait until the connection has closed."""
        await asyncio.shield(self._closed)

    # --- sending ----------------------------------------------------------------------------

    def _write(self, *parts: bytes) -> int:
        self._raise_if_closed()
        assert self._transport is not None
        for part in parts:
            self._transport.write(part)
        self._seq += 1
        return self._seq

    def send_ingest(
        self,
        topic_id: int,
        payload: bytes,
        *,
        batch_id: int,
        record_count: int,
        on_done: IngestCallback,
        timestamp_ns: int = 0,
    ) -> None:
        """Write one ingest frame now; `on_done` is called exactly once when it settles.

        Args:
            topic_id: Target topic.
            payload: The batch payload (a TLV stream).
            batch_id: Id echoed in the Ack; must not be in flight on this connection already,
                nor be the consumer id of a pending Unsubscribe (whose Ack carries that id).
            record_count: Records in the payload (metrics only on the server).
            on_done: Called with (batch_id, None) after the Ack, or (batch_id, error).
            timestamp_ns: Batch timestamp.

        Raises:
            ConnectionError: The connection is closed.
            ValueError: `batch_id` is already in flight, or an Unsubscribe for that consumer
                id waits for its Ack.
        """
        if batch_id in self._in_flight_ids:
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
        seq = (
            self._write(header + payload)
            if len(payload) < _JOIN_BELOW
            else self._write(header, payload)
        )
        entry = _InFlight(batch_id, seq, on_done)
        self._in_flight.append(entry)
        self._in_flight_ids[batch_id] = entry

    async def request(
        self,
        command: ControlCommand,
        payload: bytes = b"",
        *,
        timeout: float | None = None,
        unsubscribe_id: int | None = None,
    ) -> Frame:
        """Send a control request and return its answer.

        Args:
            command: The control command.
            payload: Its payload.
            timeout: Bound on the wait (default: the request timeout). On timeout or
                cancellation the request keeps its place, and its late answer is dropped.
            unsubscribe_id: For UNSUBSCRIBE only: the consumer id its Ack will carry.

        Returns:
            The answer frame (for UNSUBSCRIBE, the Ack frame).

        Raises:
            LanceError: The server's ErrorResponse, mapped by `error_from_server_text`.
            TimeoutError: No answer in time.
            ConnectionError: The connection closed before the answer came.
        """
        if command == ControlCommand.UNSUBSCRIBE and unsubscribe_id is None:
            raise ValueError("UNSUBSCRIBE needs unsubscribe_id: its answer is an Ack frame")
        if unsubscribe_id is not None and unsubscribe_id in self._in_flight_ids:
            await self._settle_in_flight_batch(unsubscribe_id, timeout)
        future: asyncio.Future[Frame] = self._loop.create_future()
        seq = self._write(build_control_frame(command, payload))
        self._requests.append(
            _Request(int(command), seq, future, _answers_for(command), unsubscribe_id)
        )
        if unsubscribe_id is not None:
            self._unsubscribe_ids[unsubscribe_id] = self._unsubscribe_ids.get(unsubscribe_id, 0) + 1
        return await self._wait_bounded(
            future, timeout, f"no answer to {ControlCommand(command).name}"
        )

    async def _settle_in_flight_batch(self, batch_id: int, timeout: float | None) -> None:
        """Wait until batch `batch_id` settles, so an Ack with that id is unambiguous."""
        entry = self._in_flight_ids[batch_id]
        settled: asyncio.Future[None] = self._loop.create_future()
        original = entry.on_done

        def on_done(done_id: int, error: LanceError | None) -> None:
            original(done_id, error)
            if not settled.done():
                settled.set_result(None)

        entry.on_done = on_done
        await self._wait_bounded(settled, timeout, f"batch {batch_id} did not settle")

    async def ping(self, *, timeout: float | None = None) -> float:
        """Send a keepalive and return the round-trip time in seconds.

        Raises:
            TimeoutError: No echo in time.
            ConnectionError: The connection closed.
        """
        future: asyncio.Future[None] = self._loop.create_future()
        started = self._loop.time()
        self._send_keepalive(lambda: _resolve(future))
        await self._wait_bounded(future, timeout, "no keepalive echo")
        self._raise_if_closed()
        return self._loop.time() - started

    async def _wait_bounded(self, future: asyncio.Future[R], timeout: float | None, what: str) -> R:
        """Await `future` for at most `timeout` s (default: the request timeout); cancel it after.

        Raises:
            ConnectionError: The connection closed (its failure, when the time ran out).
            TimeoutError: `"{what} within {limit} s"`.
        """
        limit = self.options.request_timeout_s if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                return await future
        except builtins.TimeoutError:
            self._raise_if_closed()
            raise TimeoutError(f"{what} within {limit} s") from None
        finally:
            future.cancel()

    def _send_keepalive(self, on_echo: Callable[[], None] | None) -> None:
        seq = self._write(KEEPALIVE_FRAME)
        self._pings.append((seq, on_echo))

    # --- closing ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the connection; every waiter fails with `ConnectionError`."""
        self.abort(ConnectionError("connection closed by the client"))
        await asyncio.shield(self._closed)

    def abort(self, error: LanceError) -> None:
        """Close at once and fail every waiter with `error` (if it is the first failure)."""
        self._fail(error)
        if self._transport is not None:
            self._transport.abort()
        elif not self._closed.done():
            self._closed.set_result(None)

    def _lost(self, exc: Exception | None) -> None:
        reason = "the server closed the connection" if exc is None else f"connection lost: {exc}"
        self._fail(ConnectionError(reason))
        if not self._closed.done():
            self._closed.set_result(None)

    def _fail(self, error: LanceError) -> None:
        if self._failure is not None:
            return
        self._failure = error
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        requests, self._requests = self._requests, deque()
        self._unsubscribe_ids.clear()
        for request in requests:
            if not request.future.done():
                request.future.set_exception(copy_error(error))
        in_flight, self._in_flight = self._in_flight, deque()
        self._in_flight_ids.clear()
        for entry in in_flight:
            entry.on_done(entry.batch_id, copy_error(error))
        pings, self._pings = self._pings, deque()
        for _, on_echo in pings:
            if on_echo is not None:
                on_echo()
        self._ingest_errors.clear()

    def _raise_if_closed(self) -> None:
        if self._failure is not None:
            raise copy_error(self._failure)
        if self._transport is None:
            raise ConnectionError("not connected")

    # --- receiving --------------------------------------------------------------------------

    def _dispatch_all(self, frames: list[Frame]) -> None:
        self._last_traffic = self._loop.time()
        try:
            for frame in frames:
                self._dispatch(frame)
        except ProtocolError as error:
            log.warning("resetting connection to %s: %s", self.address, error)
            self.abort(error)

    def _dispatch(self, frame: Frame) -> None:
        header = frame.header
        kind = classify(header.flags, header.payload_length)
        if kind is FrameType.ACK:
            self._on_ack(header.batch_id, frame)
        elif kind is FrameType.CONTROL:
            if frame.command == ControlCommand.ERROR_RESPONSE:
                self._on_error(parse_error_response(frame.payload))
            else:
                self._answer(frame)
        elif kind is FrameType.KEEPALIVE:
            self._on_keepalive()
        elif kind is FrameType.BACKPRESSURE:
            if self._on_backpressure is not None:
                self._on_backpressure()
        else:
            raise ProtocolError(f"unexpected {kind.name} frame from the server")

    def _on_ack(self, batch_id: int, frame: Frame) -> None:
        entry = self._in_flight_ids.pop(batch_id, None)
        if entry is not None:
            if self._in_flight[0] is entry:
                self._in_flight.popleft()
            else:
                self._in_flight.remove(entry)
                self._start_barrier()
            entry.on_done(batch_id, None)
            return
        head = self._requests[0] if self._requests else None
        if head is not None and head.unsubscribe_id == batch_id:
            self._answer(frame)
            return
        raise ProtocolError(f"Ack for batch {batch_id}, which is not in flight")

    def _answer(self, frame: Frame) -> None:
        if not self._requests:
            raise ProtocolError(f"unsolicited control frame {frame.command:#04x}")
        request = self._requests[0]
        is_ack = frame.header.flags & Flag.ACK and not frame.header.flags & Flag.CONTROL
        expected = (
            request.unsubscribe_id is not None if is_ack else frame.command in request.answers
        )
        if not expected:
            raise ProtocolError(
                f"answer {frame.command:#04x} cannot answer request {request.command:#04x}"
            )
        self._pop_request()
        if not request.future.done():
            request.future.set_result(frame)

    def _pop_request(self) -> _Request:
        request = self._requests.popleft()
        consumer_id = request.unsubscribe_id
        if consumer_id is not None:
            left = self._unsubscribe_ids.pop(consumer_id) - 1
            if left:
                self._unsubscribe_ids[consumer_id] = left
        return request

    def _on_error(self, error: LanceError) -> None:
        request = self._requests[0] if self._requests else None
        oldest = self._in_flight[0] if self._in_flight else None
        if request is not None and oldest is not None:
            side = side_of(error.server_text or "")
            if side is Side.INGEST:
                request = None
            elif side is Side.CONTROL or request.seq < oldest.seq:
                oldest = None
            else:
                raise ProtocolError(
                    f"cannot tell which request the error {error.server_text!r} answers"
                )
        if request is not None:
            self._pop_request()
            if not request.future.done():
                request.future.set_exception(error)
        elif oldest is not None:
            self._ingest_errors.append(error)
            self._start_barrier()
        else:
            raise ProtocolError(f"unsolicited error from the server: {error.server_text!r}")

    def _start_barrier(self) -> None:
        """Find the batches the server refused: see the module docstring (ack barrier)."""
        if self._barrier_running or self._failure is not None:
            return
        self._barrier_running = True
        first_seq = self._seq + 1
        owned = 0

        def second_echo() -> None:
            self._barrier_running = False
            if self._failure is None:
                self._settle_refused(first_seq, owned)
                if self._ingest_errors:
                    self._start_barrier()

        def first_echo() -> None:
            # The errors for batches sent before the first keepalive precede its echo; later
            # ones belong to batches sent after it, and to the next barrier.
            nonlocal owned
            owned = len(self._ingest_errors)
            if self._failure is None:
                self._send_keepalive(second_echo)

        self._send_keepalive(first_echo)

    def _settle_refused(self, before_seq: int, owned: int) -> None:
        errors = [self._ingest_errors.popleft() for _ in range(owned)]
        errors.reverse()
        while self._in_flight and self._in_flight[0].seq < before_seq:
            entry = self._in_flight.popleft()
            del self._in_flight_ids[entry.batch_id]
            error = (
                errors.pop()
                if errors
                else ConnectionError(f"the server never acknowledged batch {entry.batch_id}")
            )
            entry.on_done(entry.batch_id, error)
        if errors:
            raise ProtocolError("more ingest errors than refused batches")

    def _on_keepalive(self) -> None:
        if not self._pings:
            log.debug("ignoring an unsolicited keepalive from %s", self.address)
            return
        _, on_echo = self._pings.popleft()
        if on_echo is not None:
            on_echo()

    async def _keepalive_loop(self) -> None:
        interval = self.options.keepalive_interval_s
        patience = max(interval, self.options.request_timeout_s)
        while self._failure is None:
            await asyncio.sleep(interval / 2)
            now = self._loop.time()
            if self._pings:
                if now - self._last_traffic > patience:
                    self.abort(TimeoutError(f"no traffic from {self.address} for {patience} s"))
                    return
            elif now - self._last_traffic >= interval:
                self._send_keepalive(None)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def copy_error(error: LanceError) -> LanceError:
    """Return a fresh exception of the same class, so each waiter gets its own traceback.

    Used wherever one failure reaches several waiters; notes added to the copy (`add_note`)
    stay on the copy.
    """
    copy = type(error).__new__(type(error))
    copy.__dict__.update(error.__dict__)
    if "__notes__" in copy.__dict__:
        copy.__notes__ = list(copy.__notes__)
    copy.args = error.args
    return copy
