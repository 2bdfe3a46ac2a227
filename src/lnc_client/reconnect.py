"""Keeping a connection: reconnects with backoff over seed addresses, retries and redirects.

A `ConnectionManager` belongs to one client object (Producer, StandaloneConsumer, LanceClient)
and holds that object's current `Connection`. `get()` returns it, or opens a new one: the seed
addresses are tried in turn (a leader named by `NOT_LEADER: redirect to <addr>` first), each
attempt resolving DNS afresh, with exponential backoff and jitter between rounds
(`ReconnectConfig`). `call(op)` runs an operation on the current connection and retries it when
the error is retryable (`LanceError.retryable`: lost connections, timeouts, `FORWARD_FAILED`,
`Rate limit exceeded`, CatchingUp, NOT_LEADER), always within the caller's deadline and at most
`ReconnectConfig.max_attempts` times when that is not 0.

`on_connect` lets the owner re-establish its state on every new connection (the Producer
resends its un-acked batches there); authentication already happens inside `Connection.open`.

With `pool` (a `ConnectionPool`, or a `ClusterClient`, which brings its pool and its
`ClusterDiscovery`), connections are borrowed from the pool instead of opened (the pool's
connection options apply) and given back when the manager closes or replaces them, and the
seed order is the discovery's current ranking (refreshed from GetClusterStatus), followed by
the manager's own seeds.

Plaintext to a TLS port, and TLS to a plaintext port, fail fast. A plaintext connection the
server closes before sending a byte (`ClosedInSilenceError`), or a TLS handshake it closes
(`HandshakeClosedError`), makes the manager ask that port what it speaks
(`tls_probe.refuse_if_wrong_security`) before it retries, at most `_TLS_PROBES` times until a
connection stays up: an answer of the other kind raises `PermanentConnectionError`; anything
else (a proxy in front of a stopped server, a TLS balancer going down) leaves the retries as
they were.

Backoff on every path. A connection that opens and is then dropped at once (a full disk, a
frame over the server's limit, a proxy in front of a stopped server) would otherwise be reopened
in a tight loop. A connection that lived less than `_STABLE_S` counts as a failed attempt: the
next open waits the backoff of the failures so far (with jitter), and only a connection that
stayed up resets the count. Repeated log lines are rate limited (`LogLimiter`).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from enum import StrEnum
from typing import TypeVar

from lnc_client.config import Address, ConnectionOptions, ReconnectConfig, parse_address
from lnc_client.connection import Connection
from lnc_client.discovery import ClusterClient
from lnc_client.errors import (
    AuthenticationError,
    ConnectionError,
    DisconnectedError,
    LanceError,
    NotLeaderError,
    TimeoutError,
)
from lnc_client.metrics import RequestStats
from lnc_client.pool import ConnectionPool, PooledConnection
from lnc_client.tls_probe import (
    ClosedInSilenceError,
    HandshakeClosedError,
    refuse_if_wrong_security,
)

__all__ = [
    "ConnectionManager",
    "ConnectionState",
    "ConnectionWatch",
    "LogLimiter",
    "StateListener",
]

_log = logging.getLogger(__name__)
T = TypeVar("T")
_STABLE_S = 1.0
"""A connection that lived this long was healthy: the next reconnect starts without delay."""
_LOG_WINDOW_S = 10.0
_TLS_PROBES = 3
"""TLS probes at most until a connection stays up (`_STABLE_S`): then silent closes are retried
without asking the port again."""
_TLS_PROBE_S = 2.0
"""Bound on one TLS probe (also bounded by the connect timeout and the caller's deadline)."""


class LogLimiter:
    """Log a message at most once per `window_s` per key; say how many were suppressed.

    Args:
        logger: Where to log.
        window_s: Seconds during which repeats of a key are counted, not logged.
    """

    __slots__ = ("_logger", "_seen", "_window")

    def __init__(self, logger: logging.Logger, window_s: float = _LOG_WINDOW_S) -> None:
        self._logger = logger
        self._window = window_s
        self._seen: dict[str, tuple[float, int]] = {}

    def log(self, level: int, key: str, message: str, *args: object) -> None:
        """Log `message % args` unless `key` was logged less than `window_s` ago."""
        now = time.monotonic()
        last, suppressed = self._seen.get(key, (-self._window, 0))
        if now - last < self._window:
            self._seen[key] = (last, suppressed + 1)
            return
        if suppressed:
            message += f" ({suppressed} similar messages suppressed)"
        self._seen[key] = (now, 0)
        self._logger.log(level, message, *args)


class ConnectionState(StrEnum):
    """Where a client object's connection stands."""

    CONNECTING = "connecting"
    """Opening a connection (first time or after a loss)."""
    CONNECTED = "connected"
    """A connection is open."""
    DISCONNECTED = "disconnected"
    """No connection, none being opened right now (between attempts, or not started)."""
    CLOSED = "closed"
    """The client object was closed."""


StateListener = Callable[[ConnectionState], None]
"""Called with the new state at every change (on the event loop; it must not block)."""


class ConnectionWatch:
    """`connection_state` and `on_connection_state` for a client object with a `_manager`."""

    __slots__ = ()
    _manager: ConnectionManager

    @property
    def connection_state(self) -> ConnectionState:
        """Where the connection stands now (`ConnectionState`)."""
        return self._manager.state

    def on_connection_state(self, listener: StateListener) -> None:
        """Call `listener(state)` at every change of `connection_state` from now on."""
        self._manager.listeners.append(listener)


class ConnectionManager:
    """The current connection of one client object, reopened on demand.

    Args:
        addresses: Seed addresses, tried in order; at least one.
        options: Per-connection options.
        reconnect: Backoff between failed attempts.
        auto_reconnect: When False, a lost connection is not reopened and `call` never
            retries: errors reach the caller at once.
        on_backpressure: Passed to every connection.
        on_connect: Awaited with each new connection before it is handed out; when it fails
            retryably the connection is closed and another one opened (after the backoff).
        pool: Borrow connections from this pool (and rank seeds by its discovery when it is a
            `ClusterClient`).
    """

    def __init__(
        self,
        addresses: Sequence[str | Address],
        options: ConnectionOptions,
        reconnect: ReconnectConfig,
        *,
        auto_reconnect: bool = True,
        on_backpressure: Callable[[], None] | None = None,
        on_connect: Callable[[Connection], Awaitable[None]] | None = None,
        pool: ConnectionPool | ClusterClient | None = None,
    ) -> None:
        if not addresses:
            raise ValueError("at least one address is needed")
        self._seeds = [parse_address(a) for a in addresses]
        self._cluster = pool if isinstance(pool, ClusterClient) else None
        self._pool = pool.pool if isinstance(pool, ClusterClient) else pool
        self._lent: PooledConnection | None = None
        self._leader: Address | None = None
        self.options = options
        self.reconnect = reconnect
        self.auto_reconnect = auto_reconnect
        self._on_backpressure = on_backpressure
        self._on_connect = on_connect
        self._current: Connection | None = None
        self._opened_once = False
        self._lock = asyncio.Lock()
        self._opening: asyncio.Task[Connection] | None = None
        self._closed = False
        self._opened_at = 0.0
        self._quick_drops = 0
        self._tls_probes = 0  # TLS probes since a connection last stayed up
        self._logs = LogLimiter(_log)
        self.reconnects = 0
        self.stats = RequestStats()
        """Requests run by `call`, their errors, retries and latency."""
        self.last_error: LanceError | None = None
        """The last failed connect attempt's error (kept for the caller's timeout message)."""
        self.listeners: list[StateListener] = []
        self._state = ConnectionState.DISCONNECTED
        self._disconnected_since: float | None = None

    @property
    def state(self) -> ConnectionState:
        """Where the connection stands (see `ConnectionState`)."""
        return self._state

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state or self._state is ConnectionState.CLOSED:
            return
        self._state = state
        loop = asyncio.get_running_loop()
        if state is ConnectionState.CONNECTED:
            self._disconnected_since = None
        elif self._disconnected_since is None:
            self._disconnected_since = loop.time()
        for listener in list(self.listeners):
            try:
                listener(state)
            except Exception:  # noqa: BLE001 - a listener's bug must not break the client
                _log.exception("a connection state listener failed")

    def _lost(self, conn: Connection) -> None:
        if conn is self._current and not self._closed:
            self._set_state(ConnectionState.DISCONNECTED)

    def _check_disconnected(self) -> None:
        """Raise `DisconnectedError` once there was no connection for `max_disconnected_s`."""
        limit = self.reconnect.max_disconnected_s
        since = self._disconnected_since
        if limit and since is not None and asyncio.get_running_loop().time() - since >= limit:
            raise DisconnectedError(
                f"no connection to the server for {limit} s (last error: {self.last_error})"
            )

    @property
    def current(self) -> Connection | None:
        """The open connection, if there is one."""
        conn = self._current
        return conn if conn is not None and conn.is_open else None

    def _candidates(self) -> list[Address]:
        ranked = list(self._cluster.addresses) if self._cluster is not None else []
        seeds = [*ranked, *(a for a in self._seeds if a not in ranked)]
        if self._leader is None:
            return seeds
        return [self._leader, *(a for a in seeds if a != self._leader)]

    def redirect(self, leader_addr: str | None) -> None:
        """Prefer `leader_addr` (from `NOT_LEADER: redirect to <addr>`) on the next connect."""
        if leader_addr:
            self._leader = parse_address(leader_addr)
        if self._current is not None:
            self._current.abort(ConnectionError("following the leader redirect"))

    async def get(self, *, deadline: float | None = None) -> Connection:
        """Return the open connection, connecting (with backoff) when there is none.

        Args:
            deadline: Loop time after which to give up, also while another caller is
                connecting (default: connect timeout per attempt and `max_attempts` rounds, or
                forever when `max_attempts` is 0).

        Raises:
            ConnectionError: Closed manager, auto_reconnect off after a loss, attempts used up.
            DisconnectedError: No connection for `reconnect.max_disconnected_s`.
            PermanentConnectionError: A failure retrying cannot fix (never retried).
            TimeoutError: The deadline passed.
            AuthenticationError: The server refused the token (never retried).
        """
        conn = self.current
        if conn is not None:
            return conn
        try:
            async with asyncio.timeout_at(deadline):
                await self._lock.acquire()
        except builtins.TimeoutError:
            raise _timed_out(None) from None
        try:
            conn = self.current
            if conn is not None:
                return conn
            if self._closed:
                raise ConnectionError("the client is closed")
            if self._opened_once and not self.auto_reconnect:
                failure = self._current.failure if self._current is not None else None
                raise ConnectionError(f"connection lost and auto_reconnect is off: {failure}")
            self._set_state(ConnectionState.DISCONNECTED)
            self._check_disconnected()
            if self._opened_once:
                await self._back_off_after_a_quick_drop(deadline)
            self._set_state(ConnectionState.CONNECTING)
            try:
                conn = await self._open_and_set_up(deadline)
            except BaseException:
                self._set_state(ConnectionState.DISCONNECTED)
                raise
            self._current = conn
            self._set_state(ConnectionState.CONNECTED)
            watcher = asyncio.ensure_future(conn.wait_closed())
            watcher.add_done_callback(lambda _: self._lost(conn))
            self._opened_at = asyncio.get_running_loop().time()
            if self._opened_once:
                self.reconnects += 1
            self._opened_once = True
            return conn
        finally:
            self._lock.release()

    async def _back_off_after_a_quick_drop(self, deadline: float | None) -> None:
        """Wait before reopening when the last connection was dropped soon after it opened."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._opened_at >= _STABLE_S:
            self._quick_drops = self._tls_probes = 0
            return
        conn = self._current
        failure = conn.failure if conn is not None else None
        if conn is not None:
            await self._refuse_if_wrong_security(failure, conn.address, deadline)
        delay = self.reconnect.delay_for_attempt(self._quick_drops)
        self._quick_drops += 1
        self._logs.log(
            logging.WARNING,
            "quick-drop",
            "the connection was lost %.3f s after it opened (%s); reconnecting in %.3f s",
            loop.time() - self._opened_at,
            failure,
            delay,
        )
        if deadline is not None and loop.time() + delay >= deadline:
            raise _timed_out(failure)
        await asyncio.sleep(delay)

    async def _refuse_if_wrong_security(
        self, failure: BaseException | None, address: Address, deadline: float | None
    ) -> None:
        """Ask `address` what it speaks after a silent close (`tls_probe.refuse_if_wrong_security`).

        At most `_TLS_PROBES` times until a connection stays up, and within `deadline`.
        """
        silent = isinstance(failure, ClosedInSilenceError | HandshakeClosedError)
        if not silent or self._tls_probes >= _TLS_PROBES:
            return
        self._tls_probes += 1
        limit = min(self.options.connect_timeout_s, _TLS_PROBE_S)
        if deadline is not None:
            limit = min(limit, deadline - asyncio.get_running_loop().time())
        await refuse_if_wrong_security(failure, address, limit)

    async def _open_and_set_up(self, deadline: float | None) -> Connection:
        """Open a connection and run `on_connect` on it; only a set-up connection is kept.

        A retryable `on_connect` failure (e.g. `FORWARD_FAILED: Leader not ready` while a new
        leader catches up) closes that connection and tries a new one after the backoff, within
        `deadline`; any other failure closes it and is raised.
        """
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            conn = await self._open_unless_closed(deadline)
            if self._on_connect is None:
                return conn
            try:
                await self._on_connect(conn)
            except LanceError as error:
                await self._drop(conn)
                await self._refuse_if_wrong_security(error, conn.address, deadline)
                attempt += 1
                delay = self.reconnect.delay_for_attempt(attempt - 1)
                if (
                    not error.retryable
                    or not self.auto_reconnect
                    or (self.reconnect.max_attempts and attempt >= self.reconnect.max_attempts)
                    or (deadline is not None and loop.time() + delay >= deadline)
                ):
                    raise
                _log.info("setting up the connection to %s failed: %s", conn.address, error)
                await asyncio.sleep(delay)
            except BaseException:
                await self._drop(conn)
                raise
            else:
                return conn

    async def _open_unless_closed(self, deadline: float | None) -> Connection:
        """`_open` in a task that `close()` cancels; a connection is never kept after close."""
        opening = self._opening = asyncio.get_running_loop().create_task(self._open(deadline))
        try:
            conn = await opening
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed and (task is None or not task.cancelling()):
                raise ConnectionError("the client was closed while connecting") from None
            raise
        finally:
            self._opening = None
        if self._closed:
            await self._drop(conn)
            raise ConnectionError("the client was closed while connecting")
        return conn

    async def _connect(self, address: Address, options: ConnectionOptions) -> Connection:
        if self._pool is None:
            return await Connection.open(address, options, on_backpressure=self._on_backpressure)
        await self._give_back()
        try:
            async with asyncio.timeout(options.connect_timeout_s):
                lent = await self._pool.acquire(address)
        except builtins.TimeoutError as error:
            if isinstance(error, LanceError):
                raise
            raise TimeoutError(f"no pooled connection to {address} in time") from None
        lent.connection.on_backpressure = self._on_backpressure
        self._lent = lent
        return lent.connection

    async def _give_back(self) -> None:
        lent, self._lent = self._lent, None
        if lent is not None:
            lent.connection.on_backpressure = None
            await lent.release()

    async def _drop(self, conn: Connection) -> None:
        """Close `conn`, or give it back to the pool it came from."""
        if self._lent is not None and self._lent.connection is conn:
            await self._give_back()
        else:
            await conn.close()

    async def _open(self, deadline: float | None) -> Connection:
        loop = asyncio.get_running_loop()
        attempt = 0
        last_error: LanceError | None = None
        while True:
            for address in self._candidates():
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    raise _timed_out(last_error)
                options = self.options
                if remaining is not None and remaining < options.connect_timeout_s:
                    options = _with_connect_timeout(options, remaining)
                try:
                    return await self._connect(address, options)
                except AuthenticationError:
                    raise
                except LanceError as error:
                    if not error.retryable:
                        raise
                    await self._refuse_if_wrong_security(error, address, deadline)
                    last_error = self.last_error = error
                    self._logs.log(
                        logging.INFO,
                        f"connect {address}",
                        "connecting to %s failed: %s",
                        address,
                        error,
                    )
            if not self.auto_reconnect and not self._opened_once:
                assert last_error is not None
                raise last_error
            attempt += 1
            if self.reconnect.max_attempts and attempt >= self.reconnect.max_attempts:
                raise ConnectionError(f"gave up after {attempt} rounds: {last_error}")
            self._check_disconnected()
            delay = self.reconnect.delay_for_attempt(attempt - 1)
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - loop.time()))
            await asyncio.sleep(delay)

    async def call(
        self, operation: Callable[[Connection], Awaitable[T]], *, timeout: float | None = None
    ) -> T:
        """Run `operation` on the connection, reconnecting and retrying retryable errors.

        `operation` runs at most `reconnect.max_attempts` times (unbounded when 0), with the
        reconnect backoff between tries, all within `timeout`.

        Args:
            operation: An awaitable factory taking the connection (e.g. an `operations` call).
            timeout: Overall bound, retries included (default: the request timeout).

        Raises:
            LanceError: The last error, when it is not retryable, auto_reconnect is off, the
                attempts are used up, or the time is up.
        """
        loop = asyncio.get_running_loop()
        stats, started = self.stats, loop.time()
        stats.requests += 1
        try:
            return await self._call(operation, loop, started, timeout)
        except Exception:
            stats.errors += 1
            raise
        finally:
            stats.latency.observe(loop.time() - started)

    async def _call(
        self,
        operation: Callable[[Connection], Awaitable[T]],
        loop: asyncio.AbstractEventLoop,
        started: float,
        timeout: float | None,
    ) -> T:
        limit = self.options.request_timeout_s if timeout is None else timeout
        deadline = started + limit
        attempt = 0
        while True:
            conn = await self.get(deadline=deadline)
            try:
                async with asyncio.timeout_at(deadline):
                    return await operation(conn)
            except NotLeaderError as error:
                self.redirect(error.leader_addr)
                last: LanceError = error
            except LanceError as error:
                if not error.retryable or not self.auto_reconnect:
                    raise
                last = error
            except builtins.TimeoutError as error:
                raise _timed_out(None) from error
            attempt += 1
            if self.reconnect.max_attempts and attempt >= self.reconnect.max_attempts:
                raise last
            delay = self.reconnect.delay_for_attempt(attempt - 1)
            if loop.time() + delay >= deadline:
                raise last
            self.stats.retries += 1
            await asyncio.sleep(delay)

    async def close(self) -> None:
        """Close the current connection and stop a connect in progress; `get` refuses from now on.

        A `get` that was connecting raises `ConnectionError`; the connection it was opening is
        closed (`Connection.open` aborts it when cancelled).
        """
        self._closed = True
        self._set_state(ConnectionState.CLOSED)
        if self._opening is not None:
            self._opening.cancel()
        if self._current is not None:
            await self._drop(self._current)


def _timed_out(last_error: LanceError | None) -> LanceError:
    detail = f" (last error: {last_error})" if last_error is not None else ""
    return TimeoutError(f"deadline passed{detail}")


def _with_connect_timeout(options: ConnectionOptions, seconds: float) -> ConnectionOptions:
    return replace(options, connect_timeout_s=seconds)
