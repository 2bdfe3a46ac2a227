"""ConnectionPool against the embedded server: reuse, limits, lifetime, idle timeout, health."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from lnc_client import operations
from lnc_client._lifecycle import cancel_and_wait
from lnc_client.config import ConnectionOptions
from lnc_client.errors import ConnectionError, TimeoutError
from lnc_client.pool import ConnectionPool, PoolConfig
from lnc_client.protocol.records import encode_values

from .conftest import ServerUnderTest, TcpProxy, start_server


def pool_config(**changes: object) -> PoolConfig:
    options: dict[str, object] = {
        "health_check_interval_s": 0.0,
        "connection": ConnectionOptions(connect_timeout_s=2, request_timeout_s=2),
    }
    options.update(changes)
    return PoolConfig(**options)  # type: ignore[arg-type]


async def test_connections_are_reused_and_several_per_address(
    events_server: ServerUnderTest,
) -> None:
    async with ConnectionPool(pool_config(max_connections=3)) as pool:
        first = await pool.acquire(events_server.address)
        second = await pool.acquire(events_server.address)
        assert first.connection is not second.connection
        assert [t.name for t in await operations.list_topics(first.connection)] == ["events"]
        await first.release()
        await first.release()
        third = await pool.acquire(events_server.address)
        assert third.connection is first.connection
        await second.release()
        await third.release()
        stats = pool.stats
        assert (stats.connections_created, stats.idle_connections, stats.active_connections) == (
            2,
            2,
            0,
        )
        assert (stats.acquire_attempts, stats.acquire_successes) == (3, 3)


async def test_max_connections_waits_then_times_out(events_server: ServerUnderTest) -> None:
    config = pool_config(max_connections=1, acquire_timeout_s=0.2)
    async with ConnectionPool(config) as pool:
        held = await pool.acquire(events_server.address)
        with pytest.raises(TimeoutError, match="no connection"):
            await pool.acquire(events_server.address)
        waiter = asyncio.ensure_future(pool.acquire(events_server.address))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await held.release()
        lent = await waiter
        assert lent.connection is held.connection
        await lent.release()
        assert pool.stats.acquire_failures == 1


async def test_expired_idle_and_unhealthy_connections_are_not_reused(
    events_server: ServerUnderTest,
) -> None:
    address = events_server.address
    async with ConnectionPool(pool_config(max_lifetime_s=0.1)) as pool:
        old = await pool.acquire(address)
        await old.release()
        await asyncio.sleep(0.15)
        new = await pool.acquire(address)
        assert new.connection is not old.connection
        assert not old.connection.is_open
        new.mark_unhealthy()
        await new.release()
        assert not new.connection.is_open
    async with ConnectionPool(pool_config(idle_timeout_s=0.1)) as pool:
        async with pool.connection(address) as first:
            pass
        await asyncio.sleep(0.15)
        async with pool.connection(address) as second:
            assert second is not first


async def test_a_failed_block_retires_its_connection(events_server: ServerUnderTest) -> None:
    async with ConnectionPool(pool_config()) as pool:
        with pytest.raises(RuntimeError):
            async with pool.connection(events_server.address) as conn:
                raise RuntimeError("boom")
        assert not conn.is_open
        assert pool.stats.connections_closed == 1


async def test_health_check_drops_dead_connections(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    await server.start()
    address = server.address
    try:
        async with ConnectionPool(pool_config(health_check_interval_s=0.05)) as pool:
            async with pool.connection(address), pool.connection(address):
                pass
            assert await pool.check_health() == 0
            assert pool.stats.idle_connections == 2
            await server.stop()
            await asyncio.sleep(0.2)
            assert pool.stats.idle_connections == 0
            assert pool.stats.connections_closed == 2
    finally:
        await server.stop()


async def test_a_closed_pool_refuses(events_server: ServerUnderTest) -> None:
    pool = ConnectionPool(pool_config())
    async with pool.connection(events_server.address) as conn:
        pass
    await pool.close()
    assert not conn.is_open
    with pytest.raises(ConnectionError, match="closed"):
        await pool.acquire(events_server.address)


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        PoolConfig(max_connections=0)
    with pytest.raises(ValueError, match=">= 0"):
        PoolConfig(idle_timeout_s=-1)


async def test_health_check_closes_a_connection_that_does_not_answer(
    events_server: ServerUnderTest, proxy: Callable[[str], Awaitable[TcpProxy]]
) -> None:
    slow = await proxy(events_server.address)
    options = ConnectionOptions(connect_timeout_s=2, request_timeout_s=0.2)
    async with ConnectionPool(pool_config(connection=options)) as pool:
        async with pool.connection(slow.address) as conn:
            pass
        slow.delay_s = 1.0
        assert await pool.check_health() == 1
        assert not conn.is_open
        assert pool.stats.health_check_failures == 1


async def test_cancel_and_wait_keeps_the_closers_own_cancellation() -> None:
    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0.1)
            raise

    async def closer(task: asyncio.Task[None]) -> str:
        await cancel_and_wait(task)
        return "finished"

    quick = asyncio.ensure_future(slow_to_stop())
    await asyncio.sleep(0)
    assert await closer(quick) == "finished"
    inner = asyncio.ensure_future(slow_to_stop())
    await asyncio.sleep(0)
    outer = asyncio.ensure_future(closer(inner))
    await asyncio.sleep(0.01)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer


async def test_a_connection_with_a_batch_awaiting_its_ack_is_not_lent_again(
    events_server: ServerUnderTest, proxy: Callable[[str], Awaitable[TcpProxy]]
) -> None:
    """Its batch id belongs to the last borrower: the next one (numbering from 1) would clash."""
    link = await proxy(events_server.address)
    link.delay_s = 0.5  # the Ack is on its way for a while
    async with ConnectionPool(pool_config()) as pool:
        lent = await pool.acquire(link.address)
        conn = lent.connection
        topic_id = (await operations.list_topics(conn))[0].id
        conn.send_ingest(
            topic_id, encode_values([b"x"]), batch_id=1, record_count=1, on_done=lambda *_: None
        )
        assert conn.in_flight == 1
        await lent.release()
        again = await pool.acquire(link.address)
        assert again.connection is not conn
        assert not conn.is_open  # retired, not kept
        again.connection.send_ingest(
            topic_id, encode_values([b"y"]), batch_id=1, record_count=1, on_done=lambda *_: None
        )  # the same batch id is no clash on a fresh connection
        await again.release()
