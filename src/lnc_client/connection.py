"""One TCP or TLS connection to a Lance server: the transport, the waiters and the timers.

Which reply belongs to which request or batch is decided by the sans-I/O
`lnc_client.protocol.exchange.ClientExchange` (FIFO acks, the ack barrier that places error
frames, control replies in order, which error texts belong to which side); this module only
drives it. Data flow: `send_ingest` (no await) and `await request(...)` ask the exchange for
the bytes and write them to the transport at once. The transport reads straight into the
exchange's receive buffer (`asyncio.BufferedProtocol`); each read returns events, and
`_handle` settles the matching waiter: an ingest's `on_done` callback, a request's future, a
ping's future. The keepalives the exchange sends on its own (the ack barrier) are written
before any event is handled, so the wire keeps the order the exchange counted.

Every wait is bounded: connect and authenticate by `connect_timeout_s`, each request by its
timeout, and a keepalive that gets no echo within `request_timeout_s` closes the connection.
A request that timed out or was cancelled keeps its place; its late answer is dropped. When
the connection is lost, every waiter fails with a retryable `ConnectionError`; when the
exchange breaks (a reply that fits nothing), the connection is reset with its `ProtocolError`.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Final, TypeVar, cast

from lnc_client._lwp_connection import LwpConnection, connect
from lnc_client.config import Address, ConnectionOptions, parse_address
from lnc_client.errors import (
    AuthenticationError,
    ConnectionError,
    LanceError,
    PermanentConnectionError,
    TimeoutError,
)
from lnc_client.protocol.control import authenticate_payload, parse_auth_response
from lnc_client.protocol.exchange import (
    BackpressureSeen,
    BatchAcked,
    BatchRefused,
    ClientExchange,
    Event,
    ExchangeBroken,
    KeepaliveSeen,
    RequestAnswered,
    RequestFailed,
)
from lnc_client.protocol.frame import ControlCommand, Frame
from lnc_client.tls_probe import ClosedInSilenceError, HandshakeClosedError

__all__ = ["Connection", "IngestCallback", "LwpConnection", "connect"]

log = logging.getLogger(__name__)
"""This module's logger (`lnc_client.connection`), also lnc-client 0.2.9's `log`."""
R = TypeVar("R")

IngestCallback = Callable[[int, LanceError | None], None]
"""Called once per ingest with (batch_id, None) on its ack or (batch_id, error) on failure."""


class _Reader(asyncio.BufferedProtocol):
    """The transport-facing half: reads into the exchange and hands its events over.

    It also tracks whether the transport takes more data (`writable`) and when bytes last
    came in, for the idle keepalive (`keep_alive`).
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._exchange = connection._exchange
        self._loop = connection._loop
        self.writable = asyncio.Event()
        self.writable.set()
        self.last_traffic = self._loop.time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's are not subclasses of asyncio.Transport)
        self._connection._transport = cast("asyncio.Transport", transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._exchange.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.last_traffic = self._loop.time()
        self._connection.bytes_received += nbytes
        self._connection._received(self._exchange.buffer_updated(nbytes))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._connection._lost(exc)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    async def wait_writable(self, limit: float) -> bool:
        """Wait until writable (or closed: `_fail` sets it), at most `limit` s; False on timeout."""
        try:
            async with asyncio.timeout(limit):
                await self.writable.wait()
        except builtins.TimeoutError:
            return False
        return True

    async def keep_alive(self, options: ConnectionOptions) -> None:
        """Send a keepalive when idle; close when an echo is overdue.

        Idle: nothing came in for `keepalive_interval_s`. Overdue: an echo is awaited and nothing
        came in for `request_timeout_s` (at least the interval).
        """
        interval = options.keepalive_interval_s
        patience = max(interval, options.request_timeout_s)
        connection = self._connection
        while connection.failure is None:
            await asyncio.sleep(interval / 2)
            quiet = self._loop.time() - self.last_traffic
            if self._exchange.awaiting_echo:
                if quiet > patience:
                    error = TimeoutError(f"no traffic from {connection.address} for {patience} s")
                    connection.abort(error)
                    return
            elif quiet >= interval:
                connection._send_keepalive()


class _Waiters:
    """Who waits for what: ingest callbacks by batch id, request and ping futures by id."""

    def __init__(self) -> None:
        self.batches: dict[int, IngestCallback] = {}
        self.requests: dict[int, asyncio.Future[Frame]] = {}
        self.pings: dict[int, asyncio.Future[None]] = {}

    def settle(self, event: Event) -> None:
        """Settle the waiter an exchange event is for (a late answer's waiter is gone)."""
        if type(event) is BatchAcked:
            self.batches.pop(event.batch_id)(event.batch_id, None)
        elif type(event) is BatchRefused:
            self.batches.pop(event.batch_id)(event.batch_id, event.error)
        elif type(event) is RequestAnswered:
            future = self.requests.pop(event.request_id)
            if not future.done():  # else timed out or cancelled: the late answer is dropped
                future.set_result(event.frame)
        elif type(event) is RequestFailed:
            failed = self.requests.pop(event.request_id)
            if not failed.done():
                failed.set_exception(event.error)
        elif type(event) is KeepaliveSeen and event.ping_id is not None:
            ping = self.pings.pop(event.ping_id, None)
            if ping is not None and not ping.done():
                ping.set_result(None)

    def fail_all(self, error: LanceError) -> None:
        """Fail every waiter, each with its own copy of `error`."""
        requests, self.requests = self.requests, {}
        pings, self.pings = self.pings, {}
        futures: list[asyncio.Future[Frame] | asyncio.Future[None]] = [
            *requests.values(),
            *pings.values(),
        ]
        for future in futures:
            if not future.done():
                future.set_exception(copy_error(error))
        batches, self.batches = self.batches, {}
        for batch_id, on_done in batches.items():
            on_done(batch_id, copy_error(error))

    def settled(self, batch_id: int, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """A future done once batch `batch_id` (in flight) settles, either way."""
        settled: asyncio.Future[None] = loop.create_future()
        original = self.batches[batch_id]

        def on_done(done_id: int, error: LanceError | None) -> None:
            original(done_id, error)
            if not settled.done():
                settled.set_result(None)

        self.batches[batch_id] = on_done
        return settled


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
        self.on_backpressure = on_backpressure
        """Called for each Backpressure frame received (its owner may replace it)."""
        self._loop = asyncio.get_running_loop()
        self._exchange = ClientExchange(max_payload_size=options.max_frame_payload)
        self._transport: asyncio.Transport | None = None
        self._reader = _Reader(self)
        self._closed = self._loop.create_future()
        self._failure: LanceError | None = None
        self.bytes_received = 0  # from the server, so far
        self._waiters = _Waiters()
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
                lambda: self._reader,
                self.address.host,
                self.address.port,
                ssl=options.ssl_context,
                server_hostname=server_hostname,
            )
        except OSError as error:
            raise _connect_error(self.address, error, options.ssl_context) from error
        if options.auth_token is not None:
            reply = await self.request(
                ControlCommand.AUTHENTICATE, authenticate_payload(options.auth_token)
            )
            result = parse_auth_response(reply.payload)
            if not result.ok:
                raise AuthenticationError(server_text=result.message)
        if options.keepalive_interval_s > 0:
            self._keepalive_task = self._loop.create_task(self._reader.keep_alive(options))

    @property
    def is_open(self) -> bool:
        """Whether the connection can still send."""
        return self._failure is None and self._transport is not None

    @property
    def writable(self) -> bool:
        """False while the transport's write buffer is above its high-water mark."""
        return self._reader.writable.is_set()

    @property
    def in_flight(self) -> int:
        """Ingest batches sent and not yet settled."""
        return len(self._waiters.batches)

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
        limit = self.options.request_timeout_s if timeout is None else timeout
        writable = await self._reader.wait_writable(limit)
        self._raise_if_closed()
        if not writable:
            raise TimeoutError(f"the server did not read for {limit} s")

    async def wait_closed(self) -> None:
        """Wait until the connection has closed."""
        await asyncio.shield(self._closed)

    def _write(self, *parts: bytes | bytearray) -> None:
        assert self._transport is not None
        for part in parts:
            self._transport.write(part)

    def send_ingest(
        self,
        topic_id: int,
        payload: bytes | bytearray,
        *,
        batch_id: int,
        record_count: int,
        on_done: IngestCallback,
        timestamp_ns: int = 0,
    ) -> None:
        """Write one ingest frame now; `on_done` is called exactly once when it settles.

        Args:
            topic_id: Target topic.
            payload: The batch payload (a TLV stream); it must not change until it settles.
            batch_id: Id echoed in the Ack; not in flight here, nor a pending Unsubscribe's.
            record_count: Records in the payload (metrics only on the server).
            on_done: Called with (batch_id, None) after the Ack, or (batch_id, error).
            timestamp_ns: Batch timestamp.

        Raises:
            ConnectionError: The connection is closed.
            ValueError: `batch_id` is in flight, or a pending Unsubscribe's consumer id.
        """
        self._raise_if_closed()
        self._write(
            *self._exchange.send_batch(
                topic_id,
                payload,
                batch_id=batch_id,
                record_count=record_count,
                timestamp_ns=timestamp_ns,
            )
        )
        self._waiters.batches[batch_id] = on_done

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
            ValueError: UNSUBSCRIBE without `unsubscribe_id` (checked by the exchange).
        """
        if unsubscribe_id is not None and unsubscribe_id in self._waiters.batches:
            # Its Ack would carry the same id as the batch's: let the batch settle first.
            settled = self._waiters.settled(unsubscribe_id, self._loop)
            await self._wait_bounded(settled, timeout, f"batch {unsubscribe_id} did not settle")
        self._raise_if_closed()
        request_id, frame = self._exchange.send_request(
            command, payload, unsubscribe_id=unsubscribe_id
        )
        self._write(frame)
        future: asyncio.Future[Frame] = self._loop.create_future()
        self._waiters.requests[request_id] = future
        return await self._wait_bounded(future, timeout, command)

    async def ping(self, *, timeout: float | None = None) -> float:
        """Send a keepalive and return the round-trip time in seconds.

        Raises:
            TimeoutError: No echo in time.
            ConnectionError: The connection closed.
        """
        future: asyncio.Future[None] = self._loop.create_future()
        started = self._loop.time()
        self._waiters.pings[self._send_keepalive()] = future
        await self._wait_bounded(future, timeout, "no keepalive echo")
        return self._loop.time() - started

    async def _wait_bounded(
        self, future: asyncio.Future[R], timeout: float | None, what: str | ControlCommand
    ) -> R:
        """Await `future` at most `timeout` s (default: request timeout), then cancel it.

        On timeout: the connection's failure if it closed, else `TimeoutError(what ...)`;
        `what` is a command when an answer to it is awaited.
        """
        limit = self.options.request_timeout_s if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                return await future
        except builtins.TimeoutError:
            self._raise_if_closed()
            if isinstance(what, ControlCommand):
                what = f"no answer to {what.name}"
            raise TimeoutError(f"{what} within {limit} s") from None
        finally:
            future.cancel()

    def _send_keepalive(self) -> int:
        self._raise_if_closed()
        ping_id, frame = self._exchange.send_keepalive()
        self._write(frame)
        return ping_id

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
        silent = not self.bytes_received and self.options.ssl_context is None
        error = ClosedInSilenceError if silent else ConnectionError
        self._fail(error(_lost_reason(exc, silent=silent)))
        if not self._closed.done():
            self._closed.set_result(None)

    def _fail(self, error: LanceError) -> None:
        if self._failure is not None:
            return
        self._failure = error
        self._reader.writable.set()  # wakes `wait_writable`, which then raises the failure
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        self._waiters.fail_all(error)

    def _raise_if_closed(self) -> None:
        if self._failure is not None:
            raise copy_error(self._failure)
        if self._transport is None:
            raise ConnectionError("not connected")

    def _received(self, events: list[Event]) -> None:
        if self._failure is not None:
            return
        output = self._exchange.data_to_send()
        if output:
            self._write(*output)
        for event in events:
            if self._failure is not None:
                return
            if isinstance(event, ExchangeBroken):
                log.warning("resetting connection to %s: %s", self.address, event.error)
                self.abort(event.error)
            elif isinstance(event, BackpressureSeen):
                if self.on_backpressure is not None:
                    self.on_backpressure()
            else:
                self._waiters.settle(event)


def copy_error(error: LanceError) -> LanceError:
    """Return a fresh exception of the same class, so each waiter gets its own traceback.

    Used wherever one failure reaches several waiters; notes added to the copy (`add_note`)
    stay on the copy. The cause (`__cause__`) is kept.
    """
    copy = type(error).__new__(type(error))
    copy.__dict__.update(error.__dict__)
    if error.__cause__ is not None:
        copy.__cause__ = error.__cause__
    if "__notes__" in copy.__dict__:
        copy.__notes__ = list(copy.__notes__)
    copy.args = error.args
    return copy


_UNRESOLVABLE: Final = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)


def _lost_reason(exc: Exception | None, *, silent: bool) -> str:
    """Why a connection was lost; `silent`: plaintext, and the server never sent a byte."""
    reason = "the server closed the connection" if exc is None else f"connection lost: {exc}"
    if silent:
        reason += (
            " before answering anything (if the port speaks TLS, connect with TLS: this client "
            "does not use it)"
        )
    return reason


def _connect_error(
    address: Address, error: OSError, ssl_context: ssl.SSLContext | None
) -> ConnectionError:
    """The error for a failed connect: permanent when retrying cannot help, with its cause."""
    tls = ssl_context is not None
    if isinstance(error, socket.gaierror) and error.errno in _UNRESOLVABLE:
        return PermanentConnectionError(f"the host name {address.host!r} does not resolve: {error}")
    if tls and isinstance(error, ssl.SSLCertVerificationError):
        return PermanentConnectionError(f"TLS to {address}: the certificate was refused: {error}")
    if tls and isinstance(error, ssl.SSLEOFError | ConnectionResetError | EOFError):
        # a plaintext port, or a TLS server or balancer going down: the manager asks the port
        return HandshakeClosedError(
            f"TLS to {address}: the server closed the connection in the handshake ({error!r})"
        )
    if tls and isinstance(error, ssl.SSLError):
        return PermanentConnectionError(
            f"TLS to {address} failed in the handshake ({error!r}): the port does not speak "
            "TLS (a plaintext port?); connect without TLS"
        )
    return ConnectionError(f"cannot connect to {address}: {error}")
