"""Producer, StandaloneConsumer and LanceClient on a shared ConnectionPool or ClusterClient."""

from __future__ import annotations

from pathlib import Path

from lnc_client import (
    LanceClient,
    Producer,
    StandaloneConfig,
    StandaloneConsumer,
    StreamingConsumer,
)
from lnc_client.config import ConnectionOptions
from lnc_client.discovery import ClusterClient
from lnc_client.pool import ConnectionPool, PoolConfig

from .conftest import ServerUnderTest, start_server

CONFIG = PoolConfig(
    health_check_interval_s=0,
    connection=ConnectionOptions(connect_timeout_s=1, request_timeout_s=2),
)


async def test_clients_borrow_and_give_back_one_connection(events_server: ServerUnderTest) -> None:
    address = events_server.address
    async with ConnectionPool(CONFIG) as pool:
        async with Producer(address, pool=pool) as producer:
            await producer.send_batch("events", [b"a", b"b"])
        assert (pool.stats.connections_created, pool.stats.idle_connections) == (1, 1)
        for _ in range(2):
            config = StandaloneConfig("reader", topic_name="events", auto_commit_interval_s=None)
            async with StandaloneConsumer(address, config, pool=pool) as consumer:
                batch = await consumer.poll(2)
                assert batch is not None
                assert [r.value for r in batch.records] == [b"a", b"b"]
        async with LanceClient(address, pool=pool) as client:
            assert [t.name for t in await client.list_topics()] == ["events"]
        stats = pool.stats
        assert (stats.connections_created, stats.acquire_attempts) == (1, 4)
        assert stats.active_connections == 0


async def test_a_lost_pooled_connection_is_replaced(events_server: ServerUnderTest) -> None:
    async with ConnectionPool(CONFIG) as pool, LanceClient(events_server.address, pool=pool) as c:
        await c.list_topics()
        lent = pool.stats
        assert lent.active_connections == 1
        first = c._manager.current
        assert first is not None
        await first.close()
        assert [t.name for t in await c.list_topics()] == ["events"]
        assert pool.stats.connections_created == 2
        assert pool.stats.connections_closed == 1


async def test_cluster_client_ranking_decides_where_clients_connect(
    events_server: ServerUnderTest, tmp_path: Path
) -> None:
    dead = start_server(tmp_path / "dead")
    await dead.start()
    dead_address = dead.address
    await dead.stop()
    cluster = ClusterClient([dead_address, events_server.address], CONFIG, refresh_interval_s=0)
    async with cluster:
        assert str(cluster.addresses[0]) == events_server.address
        async with LanceClient(dead_address, pool=cluster) as client:
            assert [t.name for t in await client.list_topics()] == ["events"]
            current = client._manager.current
            assert current is not None
            assert str(current.address) == events_server.address


async def test_streaming_consumer_on_a_pool(events_server: ServerUnderTest) -> None:
    async with ConnectionPool(CONFIG) as pool:
        async with Producer(events_server.address, pool=pool) as producer:
            await producer.send_batch("events", [b"s"])
        config = StandaloneConfig("grp", topic_name="events")
        async with StreamingConsumer(events_server.address, config, pool=pool) as consumer:
            assert [r.value async for r in consumer.records(limit=1)] == [b"s"]
        assert pool.stats.connections_created == 1
