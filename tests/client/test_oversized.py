"""A record larger than the server's maximum payload (issue 9.6): a clear error on that send,
not a reconnect loop; the producer goes on with the next records."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lnc_client import LanceClient, Producer
from lnc_client.config import ClientConfig, ProducerConfig, ReconnectConfig
from lnc_client.errors import ProtocolError
from lnc_client.server import LanceServer, ServerConfig


@pytest.mark.ours_only("starts lnc serve with a small max_payload_size")
async def test_a_batch_over_the_server_limit_fails_with_a_clear_error(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path, port=0, max_payload_size=64 * 1024)
    async with LanceServer(config=config) as server:
        async with LanceClient(ClientConfig(host=server.host, port=server.port)) as admin:
            topic = (await admin.create_topic("t")).id
        fast = ReconnectConfig(base_delay_ms=20, max_delay_ms=100)
        producer_config = ProducerConfig(reconnect=fast, delivery_timeout_s=60.0)
        async with Producer(server.address, producer_config) as producer:
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(ProtocolError, match="larger than the server's maximum payload"):
                await producer.send(topic, bytes(100 * 1024))
            assert loop.time() - start < 5  # not the 60 s delivery timeout
            await producer.send(topic, b"small")  # the producer is still usable
            metrics = producer.metrics()
            assert metrics.batches_failed == 1
            assert metrics.batches_acked == 1
