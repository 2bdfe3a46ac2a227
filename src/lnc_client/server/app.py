"""`LanceServer` (asyncio) and `ServerThread` (a LanceServer on its own loop, for blocking code).

Lifecycle: `start()` recovers the data directory in a thread (`TopicRegistry.load`), starts the
group-commit writer thread, binds the listener (a `Session` per connection) and starts the
periodic retention task, whose first pass runs at once. `stop()` stops accepting, lets every
session finish what it owes for the bytes it has read (Acks included) for up to
`shutdown_grace_secs`, aborts the rest, closes every segment (renaming active ones to the closed
form, as a clean shutdown of the real server does) and joins the writer. `restart()` is stop then
start on the same port and data directory. Signals are not handled here but by the CLI, which
owns the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from types import TracebackType
from typing import Final, TypedDict, TypeVar, Unpack, cast

from lnc_client.server.commands import Commands, ServerState
from lnc_client.server.config import (
    AuthConfig,
    ConfigError,
    FaultConfig,
    ServerConfig,
    ServerConfigChanges,
    TlsConfig,
)
from lnc_client.server.metrics import ObservabilityEndpoints, ServerMetrics, ServerStats
from lnc_client.server.session import Session
from lnc_client.server.storage.retention import apply_retention
from lnc_client.server.storage.topics import TopicRegistry
from lnc_client.server.storage.writer import GroupCommitWriter

__all__ = ["LanceServer", "ServerOptions", "ServerThread"]

_log = logging.getLogger(__name__)
T = TypeVar("T")
_THREAD_START_TIMEOUT: Final = 30.0
_STORAGE_CLOSE_TIMEOUT: Final = 30.0
"""Bound on closing the segments at stop (syncs and renames) and on joining the writer."""


class ServerOptions(TypedDict, total=False):
    """Keyword options of `LanceServer` and `ServerThread`; each overrides its `ServerConfig` field.

    Attributes:
        host: Listen address.
        port: TCP port; 0 picks a free one (kept across `restart()`).
        segment_max_bytes: Segment rotation size.
        retention_interval_secs: Seconds between retention passes.
        auth_tokens: Turn token auth on with these tokens.
        faults: Initial fault switches (see `FaultConfig`).
        tls: TLS settings.
        idle_timeout_secs: Close connections idle this long (0: never, the real behaviour).
        metrics_addr: Serve Prometheus metrics on this `host:port` (`/metrics`).
        health_addr: Serve the health endpoint on this `host:port` (`/health/...`).
    """

    host: str
    port: int
    segment_max_bytes: int
    retention_interval_secs: float
    auth_tokens: Iterable[str]
    faults: FaultConfig
    tls: TlsConfig
    idle_timeout_secs: float
    metrics_addr: str | None
    health_addr: str | None


def _build_config(
    data_dir: str | os.PathLike[str] | None,
    config: ServerConfig | None,
    options: ServerOptions,
) -> ServerConfig:
    if config is None:
        if data_dir is None:
            raise TypeError("LanceServer needs data_dir or config")
        config = ServerConfig(data_dir=Path(data_dir))
    given = {key: value for key, value in options.items() if value is not None}
    given.pop("auth_tokens", None)
    # the other ServerOptions keys are ServerConfig fields of the same types (tested)
    changes = cast("ServerConfigChanges", given)
    if data_dir is not None:
        changes["data_dir"] = Path(data_dir)
    tokens = options.get("auth_tokens")
    if tokens is not None:
        changes["auth"] = AuthConfig(enabled=True, tokens=tuple(tokens))
    return config.with_changes(**changes) if changes else config


def _ssl_context(tls: TlsConfig) -> ssl.SSLContext | None:
    if not tls.enabled:
        return None
    if tls.cert_path is None or tls.key_path is None:
        raise ConfigError("TLS needs cert_path and key_path")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_path, tls.key_path)
    if tls.ca_path is not None:
        context.load_verify_locations(cafile=tls.ca_path)
        context.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
    return context


class LanceServer:
    """A durable, Lance-compatible LWP server on the running event loop.

    Use it as `async with LanceServer(data_dir, port=0) as server:` or call `start()` and
    `stop()`. Keyword options override the matching `ServerConfig` fields; `config` gives the
    full configuration.

    Args:
        data_dir: The data directory (may be omitted when `config` is given).
        config: A full configuration.
        shutdown_grace_secs: How long `stop()` waits for connections to finish their Acks.
        **options: `ServerOptions` (host, port, segment_max_bytes, retention_interval_secs,
            auth_tokens, faults, tls, idle_timeout_secs), overriding the config's fields.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        config: ServerConfig | None = None,
        shutdown_grace_secs: float = 5.0,
        **options: Unpack[ServerOptions],
    ) -> None:
        self._config = _build_config(data_dir, config, options)
        self._faults = self._config.faults
        self._grace = shutdown_grace_secs
        self._port = self._config.port
        self._state: ServerState | None = None
        self._listener: asyncio.Server | None = None
        self._sessions: set[Session] = set()
        self._retention_task: asyncio.Task[None] | None = None
        self._stats = ServerStats()
        self._endpoints = ObservabilityEndpoints(self._stats, self.metrics, lambda: self.running)

    # --- properties -----------------------------------------------------------------------------

    @property
    def config(self) -> ServerConfig:
        """The configuration the server was built with."""
        return self._config

    @property
    def host(self) -> str:
        """The listen address."""
        return self._config.host

    @property
    def port(self) -> int:
        """The bound TCP port (the configured one before the first start)."""
        return self._port

    @property
    def address(self) -> str:
        """`host:port`, as a client connects to it."""
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        """The data directory."""
        return self._config.data_dir

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._listener is not None

    @property
    def faults(self) -> FaultConfig:
        """The current fault switches; assign a new `FaultConfig` to change them at once."""
        return self._faults

    @faults.setter
    def faults(self, value: FaultConfig) -> None:
        self._faults = value
        if self._state is not None:
            self._state.faults = value
            self._state.writer.inject_errno = errno.ENOSPC if value.disk_full else 0

    @property
    def connection_count(self) -> int:
        """Open client connections."""
        return len(self._sessions)

    @property
    def held_reply_bytes(self) -> int:
        """Reply bytes held back for wire order on all connections (for measurements)."""
        return sum(session.held_reply_bytes for session in self._sessions)

    @property
    def buffered_bytes(self) -> int:
        """Receive-buffer bytes of all connections (bounded by `max_buffered_bytes_total`)."""
        return self._state.buffered_bytes if self._state is not None else 0

    @property
    def fsync_count(self) -> int:
        """Segment syncs done by the writer since the last start (for measurements)."""
        return self._state.writer.syncs if self._state is not None else 0

    @property
    def metrics_address(self) -> str | None:
        """`host:port` of the Prometheus endpoint while it serves (`config.metrics_addr`)."""
        return self._endpoints.metrics_address

    @property
    def health_address(self) -> str | None:
        """`host:port` of the health endpoint while it serves (`config.health_addr`)."""
        return self._endpoints.health_address

    def metrics(self) -> ServerMetrics:
        """Return a snapshot of the server's counters (kept across restarts)."""
        state = self._state
        return self._stats.snapshot(
            connections_open=len(self._sessions),
            topics=len(state.registry.by_id) if state is not None else 0,
            fsyncs=self.fsync_count,
        )

    # --- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> LanceServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Recover the data directory, start the writer, listen, start retention.

        Raises:
            RuntimeError: Already running.
            OSError: The port cannot be bound or the data directory is unusable.
            ConfigError: Auth is on without tokens, or the token file is unreadable.
        """
        if self._listener is not None:
            raise RuntimeError("the server is already running")
        config = self._config
        loop = asyncio.get_running_loop()
        registry, tokens = await asyncio.to_thread(self._load, config)
        writer = GroupCommitWriter(loop, max_queue_bytes=config.writer_queue_max_bytes)
        writer.inject_errno = errno.ENOSPC if self._faults.disk_full else 0
        writer.stats = self._stats
        writer.start()
        state = ServerState(config, registry, writer, tokens, self._faults, stats=self._stats)
        commands = Commands(state)
        try:
            listener = await loop.create_server(
                lambda: Session(state, commands, self._sessions),
                config.host,
                self._port,
                ssl=_ssl_context(config.tls),
                reuse_address=True,
                backlog=1024,
            )
        except BaseException:
            await self._close_storage(state)
            raise
        original = listener.sockets[0].getsockname()[1]
        self._port = int(original)
        self._state = state
        self._listener = listener
        self._retention_task = loop.create_task(self._retention_loop(state))
        try:
            await self._endpoints.start(config.metrics_addr, config.health_addr)
        except BaseException:
            await self.stop()
            raise

    @staticmethod
    def _load(config: ServerConfig) -> tuple[TopicRegistry, frozenset[str]]:
        tokens = config.auth.load_tokens()
        return TopicRegistry.load(config.data_dir, config.segment_max_bytes), tokens

    async def stop(self) -> None:
        """Stop accepting, finish or drop connections, close segments, join the writer.

        The server is stopped when this returns or raises.

        Raises:
            WriterUnavailableError: The storage writer had failed (logged when it did); the
                segments were not closed and are recovered at the next start.
            TimeoutError: The writer did not finish closing the segments in time.
        """
        await self._endpoints.stop()
        listener, state = self._listener, self._state
        if listener is None or state is None:
            return
        self._listener = None
        state.stopping = True  # before close: a connection made from now on is dropped
        await _stop_accepting(listener)
        listener.close()
        if self._retention_task is not None:
            self._retention_task.cancel()
            await asyncio.gather(self._retention_task, return_exceptions=True)
            self._retention_task = None
        while self._sessions:
            await self._close_sessions(list(self._sessions))
        await listener.wait_closed()
        try:
            await self._close_storage(state)
        finally:
            self._state = None

    async def _close_sessions(self, sessions: list[Session]) -> None:
        """Let sessions finish what they owe for up to the grace period, then abort the rest."""
        for session in sessions:
            session.shutdown()
        _done, pending = await asyncio.wait([s.closed for s in sessions], timeout=self._grace)
        for session in sessions:
            if not session.closed.done():
                session.abort()
        if pending:
            await asyncio.wait(pending, timeout=self._grace)

    async def restart(self) -> None:
        """Stop, then start again on the same port and data directory."""
        await self.stop()
        await self.start()

    async def run_retention(self) -> int:
        """Run one retention pass now; returns the number of segments deleted.

        Raises:
            RuntimeError: The server is not running.
        """
        if self._state is None:
            raise RuntimeError("the server is not running")
        return await self._retention_pass(self._state)

    @staticmethod
    async def _retention_pass(state: ServerState) -> int:
        targets = [
            (topic.log, topic.retention)
            for topic in state.registry.by_id.values()
            if topic.retention is not None
        ]
        if not targets:
            return 0
        return await state.writer.call(lambda: apply_retention(targets, time.time_ns()))

    async def _retention_loop(self, state: ServerState) -> None:
        while True:
            try:
                await self._retention_pass(state)
            except OSError as error:
                _log.warning("retention pass failed, retrying next interval: %s", error)
            except Exception:  # noqa: BLE001 - a bug; nobody awaits this task, so it is logged
                _log.exception("retention pass failed unexpectedly, retrying next interval")
            await asyncio.sleep(state.config.retention_interval_secs)

    @staticmethod
    async def _close_storage(state: ServerState) -> None:
        """Close every segment on the writer thread, then stop it; both waits are bounded.

        Raises:
            WriterUnavailableError: The writer had failed; segments are left active and are
                recovered at the next start, as after a crash.
            TimeoutError: The writer did not finish in time (it is left running).
        """
        logs = state.registry.logs()

        def close_all() -> None:
            for log in logs:
                log.close()
                log.retire()

        try:
            await asyncio.wait_for(state.writer.call(close_all), _STORAGE_CLOSE_TIMEOUT)
        finally:
            await state.writer.stop(_STORAGE_CLOSE_TIMEOUT)


async def _stop_accepting(listener: asyncio.Server) -> None:
    """Accept no more connections, and let those already accepted get their transports.

    The loop accepts a connection in one turn and makes its transport in the next. Closing the
    listener in between makes that fail inside asyncio (Python 3.11's `Server._attach` asserts
    the server is still open) and the accepted socket is never closed: the peer waits for
    nothing and the garbage collector warns later. So the listening sockets are first taken off
    the loop (an accept already queued for this turn is cancelled with them), and one turn lets
    pending transports be made; their `connection_made` sees `stopping` and drops them.
    """
    loop = asyncio.get_running_loop()
    for sock in listener.sockets:
        with contextlib.suppress(NotImplementedError):  # loops without remove_reader
            loop.remove_reader(sock.fileno())
    await asyncio.sleep(0)


class ServerThread:
    """A `LanceServer` on its own event loop in a background thread, for blocking code.

    `with ServerThread(data_dir, port=0) as server: connect(server.address)`. Takes the same
    arguments as `LanceServer` (see there). `stop()` stops the server and joins the thread.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        config: ServerConfig | None = None,
        shutdown_grace_secs: float = 5.0,
        **options: Unpack[ServerOptions],
    ) -> None:
        self._server = LanceServer(
            data_dir, config=config, shutdown_grace_secs=shutdown_grace_secs, **options
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._stop_error: Exception | None = None
        self._thread = threading.Thread(target=self._main, name="lnc-server-loop")

    @property
    def server(self) -> LanceServer:
        """The server (use its methods only through this object from other threads)."""
        return self._server

    @property
    def host(self) -> str:
        """The listen address."""
        return self._server.host

    @property
    def port(self) -> int:
        """The bound port."""
        return self._server.port

    @property
    def address(self) -> str:
        """`host:port`."""
        return self._server.address

    @property
    def data_dir(self) -> Path:
        """The data directory."""
        return self._server.data_dir

    @property
    def faults(self) -> FaultConfig:
        """The current fault switches; assigning takes effect at once."""
        return self._server.faults

    @faults.setter
    def faults(self, value: FaultConfig) -> None:
        self._call_soon(lambda: setattr(self._server, "faults", value))

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ServerThread:
        """Start the thread and wait until the server listens.

        Raises:
            Exception: Whatever `LanceServer.start` raised.
            TimeoutError: It did not start in time.
        """
        self._thread.start()
        if not self._started.wait(_THREAD_START_TIMEOUT):
            raise TimeoutError("the server thread did not start")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server and join the thread.

        Raises:
            TimeoutError: The thread did not end within `timeout` seconds.
            Exception: Whatever `LanceServer.stop` raised (the thread has ended).
        """
        if self._loop is not None and self._stop_event is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop_event.set)
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the server thread did not stop within {timeout} s")
        error, self._stop_error = self._stop_error, None
        if error is not None:
            raise error

    def restart(self, timeout: float = 30.0) -> None:
        """Stop and start the server on the same port and data directory; waits."""
        self._run(self._server.restart(), timeout)

    def run_retention(self, timeout: float = 30.0) -> int:
        """Run one retention pass now; returns the number of segments deleted."""
        return self._run(self._server.run_retention(), timeout)

    def _run(self, coro: Coroutine[None, None, T], timeout: float) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the server thread is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _call_soon(self, fn: Callable[[], None]) -> None:
        if self._loop is None:
            fn()
            return
        self._loop.call_soon_threadsafe(fn)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        try:
            await self._server.start()
        except BaseException as error:  # noqa: BLE001 - re-raised by start() in the caller's thread
            self._error = error
            self._started.set()
            return
        self._started.set()
        try:
            await self._stop_event.wait()
        finally:
            try:
                await self._server.stop()
            except Exception as error:  # noqa: BLE001 - re-raised by stop() in the caller's thread
                self._stop_error = error
