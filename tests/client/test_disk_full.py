"""A producer against a full disk (issue 9.3): a typed error at once, then it goes on by itself."""

from __future__ import annotations

import asyncio

import pytest

from lnc_client.config import ProducerConfig, StandaloneConfig
from lnc_client.consumer import StandaloneConsumer
from lnc_client.errors import ServerIOError
from lnc_client.producer import Producer
from lnc_client.server import FaultConfig, LanceServer

from ..helpers import poll_values


@pytest.mark.ours_only("uses lnc serve's disk_full fault switch")
async def test_producer_gets_the_disk_full_error_promptly_and_resumes(
    events_server: LanceServer,
) -> None:
    config = ProducerConfig(delivery_timeout_s=30.0)
    async with Producer(events_server.address, config) as producer:
        await producer.send(1, b"before")
        events_server.faults = FaultConfig(disk_full=True)
        async with asyncio.timeout(2):  # not a 30 s delivery timeout, not a reconnect loop
            with pytest.raises(ServerIOError) as caught:
                await producer.send(1, b"refused")
        assert caught.value.server_text == "I/O error: No space left on device (os error 28)"
        assert not caught.value.retryable
        events_server.faults = FaultConfig()
        await producer.send(1, b"after")
        metrics = producer.metrics()
        assert (metrics.reconnects, metrics.retries, metrics.batches_failed) == (0, 0, 1)
    consumer_config = StandaloneConfig(topic_id=1)
    async with StandaloneConsumer(events_server.address, consumer_config) as consumer:
        got = await poll_values(consumer, 2)
    assert got == [b"before", b"after"]
