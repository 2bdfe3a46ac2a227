"""ConnectionManager: deadlines while another caller reconnects, close() during a connect, the
retry bound (against small stub servers on 127.0.0.1), seed failover with DNS names, and
NOT_LEADER redirects (against embedded servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from lnc_client import operations as ops
from lnc_client import reconnect as reconnect_module
from lnc_client.config import ConnectionOptions, ProducerConfig, ReconnectConfig
from lnc_client.connection import Connection
from lnc_client.errors import (
    ConnectionError,
    ForwardFailedError,
    LanceError,
    NotLeaderError,
    TimeoutError,
    TopicNotFoundError,
)
from lnc_client.producer import Producer
from lnc_client.protocol import control
from lnc_client.protocol.frame import ControlCommand, FrameDecoder, build_control_frame
from lnc_client.reconnect import ConnectionManager
from lnc_client.server import LanceServer

from .conftest import start_server

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def stub(serve: Serve) -> AsyncIterator[str]:
    """Run `serve` for every connection on an ephemeral port; yield `127.0.0.1:PORT`."""
    writers: list[asyncio.StreamWriter] = []
    handlers: list[asyncio.Task[None] | None] = []

    async def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        handlers.append(asyncio.current_task())
        try:
            await serve(reader, writer)
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(track, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
        await asyncio.gather(*(task for task in handlers if task is not None))
        await server.wait_closed()


def refused_address() -> str:
    """An address nobody listens on: connecting to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def options(**changes: object) -> ConnectionOptions:
    base: dict[str, object] = {"connect_timeout_s": 2.0, "request_timeout_s": 2.0}
    base.update(changes)
    return ConnectionOptions(keepalive_interval_s=0.0, **base)  # type: ignore[arg-type]


async def test_get_honours_its_deadline_while_another_caller_reconnects() -> None:
    manager = ConnectionManager(
        [refused_address()], options(), ReconnectConfig(base_delay_ms=5000, max_delay_ms=5000)
    )
    loop = asyncio.get_running_loop()
    holder = asyncio.create_task(manager.get(deadline=loop.time() + 10))
    await asyncio.sleep(0.05)  # the holder has failed its first round and backs off, locked
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(2):
            await manager.get(deadline=started + 0.2)
    assert 0.15 <= loop.time() - started < 0.5
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder
    await manager.close()


async def test_close_stops_a_connect_in_progress() -> None:
    accepted = asyncio.Event()
    release = asyncio.Event()
    client_gone = asyncio.Event()

    async def slow_auth(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await release.wait()
        body = control.encode_auth_response(control.AuthResult(True, "Authenticated"))
        writer.write(build_control_frame(ControlCommand.AUTHENTICATE_RESPONSE, body))
        try:
            while await reader.read(65536):
                pass
        finally:
            client_gone.set()

    async with stub(slow_auth) as address:
        manager = ConnectionManager([address], options(auth_token="t"), ReconnectConfig())
        getting = asyncio.create_task(manager.get())
        await asyncio.wait_for(accepted.wait(), 2)
        await manager.close()
        release.set()
        with pytest.raises(ConnectionError, match="closed while connecting"):
            await getting
        await asyncio.wait_for(client_gone.wait(), 2)
        assert manager.current is None


async def test_call_retries_at_most_max_attempts_times() -> None:
    requests = 0

    async def forward_failed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            for _ in decoder.feed(data):
                requests += 1
                error = b"FORWARD_FAILED: Forward operation timed out"
                writer.write(build_control_frame(ControlCommand.ERROR_RESPONSE, error))

    async with stub(forward_failed) as address:
        backoff = ReconnectConfig(base_delay_ms=1, max_delay_ms=1, max_attempts=3)
        manager = ConnectionManager([address], options(), backoff)
        with pytest.raises(ForwardFailedError):
            await manager.call(ops.list_topics, timeout=1.0)
        assert requests == 3
        unbounded = ConnectionManager(
            [address], options(), ReconnectConfig(base_delay_ms=1, max_delay_ms=1)
        )
        requests = 0
        with pytest.raises((ForwardFailedError, TimeoutError)):  # the last try may be cut
            await unbounded.call(ops.list_topics, timeout=0.2)
        assert requests > 3  # max_attempts=0: retried until the call's timeout
        await manager.close()
        await unbounded.close()


async def test_seeds_are_tried_in_turn_and_dns_names_resolve(tmp_path: Path) -> None:
    async with start_server(tmp_path / "data") as server:
        seeds = [refused_address(), f"localhost:{server.port}"]
        manager = ConnectionManager(seeds, options(), ReconnectConfig(base_delay_ms=1))
        conn = await manager.get()
        assert str(conn.address) == f"localhost:{server.port}"
        assert await ops.list_topics(conn) == []
        await manager.close()


@pytest.mark.ours_only("two lnc serve instances; status mode 'standalone' is lnc serve's text")
async def test_not_leader_redirect_is_followed(tmp_path: Path) -> None:
    async with (
        LanceServer(tmp_path / "follower", port=0) as follower,
        LanceServer(tmp_path / "leader", port=0) as leader,
    ):
        manager = ConnectionManager([follower.address], options(), ReconnectConfig(base_delay_ms=1))
        asked: list[str] = []

        async def status(conn: Connection) -> str:
            asked.append(str(conn.address))
            if str(conn.address) == follower.address:
                raise NotLeaderError(
                    leader.address, server_text=f"NOT_LEADER: redirect to {leader.address}"
                )
            return (await ops.cluster_status(conn)).mode or ""

        assert await manager.call(status, timeout=5.0) == "standalone"
        assert asked == [follower.address, leader.address]
        current = manager.current
        assert current is not None
        assert str(current.address) == leader.address
        await manager.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def recorded_backoff(
    monkeypatch: pytest.MonkeyPatch, reconnect: ReconnectConfig
) -> list[float]:
    """The sleeps a ConnectionManager takes between rounds against a closed port (not slept)."""
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        await asyncio.sleep(0)

    shim = types.SimpleNamespace(**{**vars(asyncio), "sleep": sleep})
    monkeypatch.setattr(reconnect_module, "asyncio", shim)
    manager = ConnectionManager(
        [f"127.0.0.1:{closed_port()}"], ConnectionOptions(connect_timeout_s=1.0), reconnect
    )
    with pytest.raises(ConnectionError, match="gave up"):
        await manager.get()
    return sleeps


async def test_reconnect_backoff_is_exponential_with_jitter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two clients losing the same server must not retry in lockstep (issue 9.15)."""
    config = ReconnectConfig(
        base_delay_ms=100, max_delay_ms=1000, max_attempts=7, jitter_factor=0.5
    )
    first = await recorded_backoff(monkeypatch, config)
    second = await recorded_backoff(monkeypatch, config)
    bases = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    for sleeps in (first, second):
        assert len(sleeps) == len(bases)
        for delay, base in zip(sleeps, bases, strict=True):
            assert base * 0.5 <= delay <= base * 1.5
    assert first != second  # jitter: the same schedule twice has odds of 0
    assert all(delay != base for delay, base in zip(first + second, bases * 2, strict=True))


def test_jitter_spreads_delays_over_the_whole_band() -> None:
    config = ReconnectConfig(base_delay_ms=1000, max_delay_ms=1000, jitter_factor=0.2)
    delays = [config.delay_for_attempt(0) for _ in range(400)]
    assert min(delays) < 0.85  # about uniform over [0.8, 1.2]
    assert max(delays) > 1.15
    assert all(0.8 <= d <= 1.2 for d in delays)
    assert len(set(delays)) > 390


async def test_a_connection_dropped_at_once_is_reopened_with_backoff_not_in_a_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 9.5: a server that accepts and drops at once got 56,748 reconnects in 20 s."""
    accepted = 0

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.transport.abort()

    caplog.set_level(logging.DEBUG, logger="lnc_client")
    async with stub(drop) as address:
        config = ProducerConfig(
            delivery_timeout_s=1.5, reconnect=ReconnectConfig(base_delay_ms=50, max_delay_ms=400)
        )
        producer = await Producer.connect(address, config)
        with pytest.raises(LanceError):
            await producer.send(1, b"x")
        with contextlib.suppress(LanceError):
            await producer.close()
    assert 2 <= accepted <= 15, accepted  # 50, 100, 200, 400, 400 ms ... with jitter
    assert len(caplog.records) <= 10, [r.getMessage() for r in caplog.records]


async def test_a_retryable_on_connect_failure_opens_a_new_connection() -> None:
    """Real lance: a new L3 leader answers `FORWARD_FAILED: Leader not ready` for a while."""
    opened = 0
    calls: list[str] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal opened
        opened += 1
        while await reader.read(65536):
            pass

    async def set_up(conn: Connection) -> None:
        calls.append(str(conn.address))
        if len(calls) < 3:
            raise ForwardFailedError("FORWARD_FAILED: Leader not ready (apply/metadata catch-up)")

    async with stub(accept) as address:
        backoff = ReconnectConfig(base_delay_ms=1, max_delay_ms=1)
        manager = ConnectionManager([address], options(), backoff, on_connect=set_up)
        conn = await manager.get(deadline=asyncio.get_running_loop().time() + 2)
        assert (len(calls), opened, manager.reconnects) == (3, 3, 0)
        assert manager.current is conn
        assert conn.is_open
        await manager.close()

        async def refuse(conn: Connection) -> None:
            raise TopicNotFoundError("gone")

        failing = ConnectionManager([address], options(), backoff, on_connect=refuse)
        with pytest.raises(TopicNotFoundError):
            await failing.get(deadline=asyncio.get_running_loop().time() + 2)
        assert failing.current is None
        await failing.close()
