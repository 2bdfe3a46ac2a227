"""The client and the embedded server on uvloop's event loop, as an application may run them.

uvloop's transports are not subclasses of `asyncio.Transport`: the client's and the server's
protocols once asserted that they were and failed in `connection_made` (every connection
dropped, the keepalive task failing with "not connected"). Here a topic is created, records are
sent with every kind of send, read back, and a keepalive travels, all on one uvloop loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lnc_client import LanceClient, Producer
from lnc_client.config import ClientConfig, ProducerConfig, StandaloneConfig
from lnc_client.consumer import StandaloneConsumer
from lnc_client.server import LanceServer

uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed (not on Windows)")


async def round_trip(data_dir: Path) -> list[bytes]:
    assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    async with LanceServer(data_dir, port=0) as server:
        host, _, port = server.address.rpartition(":")
        config = ClientConfig(host=host, port=int(port), keepalive_interval_s=0.05)
        async with LanceClient(config) as admin:
            topic = (await admin.create_topic("on-uvloop")).id
            conn = admin._manager.current
            assert conn is not None
            before = conn.bytes_received
            await asyncio.sleep(0.2)  # idle: keepalives go out every 25 ms and are echoed
            assert conn.bytes_received > before
            assert admin._manager.current is conn
        async with Producer(server.address, ProducerConfig(linger_ms=0)) as producer:
            await producer.send(topic, b"send")
            await producer.send_async(topic, b"send_async")
            producer.send_nowait(topic, b"send_nowait")
            await producer.send_batch_async(topic, [b"batch-1", b"batch-2"])
            await producer.flush()
        values: list[bytes] = []
        consumer_config = StandaloneConfig("uv", topic, auto_commit_interval_s=None)
        async with StandaloneConsumer(server.address, consumer_config) as consumer:
            async for record in consumer:
                values.append(record.value)
                if len(values) == 5:
                    break
        return values


def test_produce_and_consume_on_uvloop(tmp_path: Path) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        values = runner.run(asyncio.wait_for(round_trip(tmp_path / "data"), 30))
    assert values == [b"send", b"send_async", b"send_nowait", b"batch-1", b"batch-2"]
