"""Connection state (issue 9.7): a server that is down no longer looks like an idle topic."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lnc_client import ConnectionState, DisconnectedError, LanceClient, Producer
from lnc_client.config import ClientConfig, ProducerConfig, ReconnectConfig, StandaloneConfig
from lnc_client.consumer import StandaloneConsumer
from lnc_client.server import LanceServer

from ..helpers import wait_for

FAST = ReconnectConfig(base_delay_ms=20, max_delay_ms=100)


async def poll_until_error(consumer: StandaloneConsumer) -> None:
    """Poll until poll() raises (a server that is down used to give None forever)."""
    async with asyncio.timeout(5):
        while True:
            await consumer.poll(timeout=0.1)


@pytest.mark.ours_only("stops and restarts lnc serve")
async def test_state_property_and_listener_follow_the_connection(tmp_path: Path) -> None:
    async with LanceServer(tmp_path, port=0) as server:
        producer = Producer(server.address, ProducerConfig(reconnect=FAST))
        seen: list[ConnectionState] = []
        producer.on_connection_state(seen.append)
        assert producer.connection_state is ConnectionState.DISCONNECTED
        await producer.start()
        assert producer.connection_state is ConnectionState.CONNECTED
        await server.stop()
        await wait_for(lambda: producer.connection_state is ConnectionState.DISCONNECTED)
        await server.start()
        topic = 0
        async with LanceClient(ClientConfig(host=server.host, port=server.port)) as admin:
            topic = (await admin.create_topic("t")).id
        await producer.send(topic, b"x")  # reconnects
        assert producer.connection_state is ConnectionState.CONNECTED
        await producer.close()
        assert producer.connection_state is ConnectionState.CLOSED
    assert seen == [
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.DISCONNECTED,
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.CLOSED,
    ]


@pytest.mark.ours_only("stops lnc serve")
async def test_poll_raises_after_max_disconnected_s_instead_of_returning_none(
    tmp_path: Path,
) -> None:
    async with LanceServer(tmp_path, port=0) as server:
        async with LanceClient(ClientConfig(host=server.host, port=server.port)) as admin:
            topic = (await admin.create_topic("t")).id
        reconnect = ReconnectConfig(base_delay_ms=20, max_delay_ms=100, max_disconnected_s=0.5)
        config = StandaloneConfig(topic_id=topic, reconnect=reconnect, request_timeout_s=0.3)
        async with StandaloneConsumer(server.address, config) as consumer:
            assert await consumer.poll(timeout=0.05) is None  # idle topic, connected
            assert consumer.connection_state is ConnectionState.CONNECTED
            await server.stop()
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(DisconnectedError, match=r"no connection to the server for 0\.5 s"):
                await poll_until_error(consumer)
            assert loop.time() - start < 3
