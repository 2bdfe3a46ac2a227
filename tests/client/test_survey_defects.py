"""CLIENT-SURVEY §3, defect by defect: each test reproduces the 0.2.9 failure scenario end to end
against the embedded server and asserts the correct behaviour instead.

Defects covered elsewhere in depth, and only re-checked briefly here: D1 (tests/client/
test_connection.py::test_server_keepalives_are_never_answered), D8 (tests/client/
test_consumer.py: the consumer id in processes with other hash seeds), D14 (tests/protocol/
test_vectors.py: IEEE CRC-32 known answers and every vector byte for byte).
"""

from __future__ import annotations

import asyncio
import socket
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Unpack

import pytest

from lnc_client import (
    ClientConfig,
    Connection,
    ConnectionOptions,
    LanceClient,
    LanceError,
    Producer,
    ProducerConfig,
    StandaloneConfig,
    StandaloneConsumer,
    SubscribeAck,
    TopicNotFoundError,
    consumer_id_for,
    operations,
    parse_address,
)
from lnc_client.config import StandaloneOptions
from lnc_client.protocol.frame import KEEPALIVE_FRAME, FrameType
from lnc_client.server import FaultConfig, LanceServer

from ..helpers import poll_values, wait_for
from .conftest import ServerUnderTest, TcpProxy, start_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerUnderTest]:
    async with start_server(tmp_path / "data") as running:
        yield running


def admin_config(server: LanceServer) -> ClientConfig:
    return ClientConfig(host=server.host, port=server.port, request_timeout_s=5.0)


async def make_topic(server: LanceServer, name: str) -> int:
    async with LanceClient(admin_config(server)) as client:
        return (await client.create_topic(name)).id


async def produce(
    server: LanceServer, topic_id: int, values: list[bytes], **config: object
) -> None:
    producer_config = ProducerConfig(request_timeout_s=5.0, **config)  # type: ignore[arg-type]
    async with await Producer.connect(server.address, producer_config) as producer:
        for value in values:
            await producer.send_async(topic_id=topic_id, data=value)
        await producer.flush(timeout=5.0)


async def consume_all(
    consumer: StandaloneConsumer, count: int, *, timeout: float = 5.0
) -> list[bytes]:
    return await poll_values(consumer, count, timeout=timeout, poll_timeout=1.0)


def consumer_config(topic_id: int, **options: Unpack[StandaloneOptions]) -> StandaloneConfig:
    return StandaloneConfig("survey", topic_id, **{"request_timeout_s": 5.0, **options})


VALUES = [b"record-%04d" % i for i in range(300)]


async def test_d1_keepalive_echo_is_not_answered(
    server: LanceServer, proxy: Callable[[str], Awaitable[TcpProxy]]
) -> None:
    """0.2.9 answered every keepalive and ping-ponged with the server forever.

    A proxy counts the keepalives the client sends: with `keepalive_interval_s=0.02` an idle
    connection sends one per 20 ms of silence (the echo ends the silence), so at most 15 in
    0.3 s, where a ping-pong sends thousands. Keepalives the server sends unasked (the real one
    never does) get no answer at all.
    """
    relay = await proxy(server.address)
    loop = asyncio.get_running_loop()
    conn = await Connection.open(relay.address, ConnectionOptions(keepalive_interval_s=0.02))
    opened = loop.time()
    await asyncio.sleep(0.3)  # the measuring window
    sent = relay.client_frames[FrameType.KEEPALIVE]
    assert 4 <= sent <= (loop.time() - opened) / 0.02 + 1
    assert conn.is_open
    await conn.close()

    quiet = await Connection.open(relay.address, ConnectionOptions(keepalive_interval_s=0))
    assert await operations.list_topics(quiet) == []  # the proxy has relayed this connection
    before = relay.client_frames.copy()
    relay.send_to_clients(KEEPALIVE_FRAME * 50)
    # The answer to a request comes after the 50 keepalives, so once a second request is
    # answered, anything the client wrote in reply to them has passed the proxy.
    for _ in range(2):
        assert await operations.list_topics(quiet) == []
    assert relay.client_frames - before == Counter({FrameType.CONTROL: 2})
    assert quiet.is_open
    await quiet.close()


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_d2_windows_that_split_records_lose_nothing(server: LanceServer) -> None:
    """0.2.9 dropped the partial tail and advanced the offset past it."""
    topic_id = await make_topic(server, "d2")
    await produce(server, topic_id, VALUES)
    server.faults = FaultConfig(max_fetch_bytes=7)
    async with await StandaloneConsumer.connect(
        server.address, consumer_config(topic_id)
    ) as consumer:
        assert await consume_all(consumer, len(VALUES), timeout=20) == VALUES
        assert consumer.current_offset == sum(5 + len(v) for v in VALUES)


async def test_d3_consumer_by_topic_name(server: LanceServer) -> None:
    """0.2.9 crashed with TypeError on `topic["id"]` when given a topic name."""
    topic_id = await make_topic(server, "d3-by-name")
    await produce(server, topic_id, VALUES[:5])
    config = StandaloneConfig.with_topic_name("survey", "d3-by-name")
    async with await StandaloneConsumer.connect(server.address, config) as consumer:
        assert consumer.topic_id == topic_id
        assert await consume_all(consumer, 5) == VALUES[:5]


async def test_d4_catching_up_is_not_data(server: LanceServer) -> None:
    """0.2.9 returned CatchingUp's 8-byte payload as records and moved the offset by 8."""
    topic_id = await make_topic(server, "d4")
    await produce(server, topic_id, VALUES[:3])
    config = consumer_config(topic_id, catching_up_backoff_s=0.01)
    async with await StandaloneConsumer.connect(server.address, config) as consumer:
        consumer.seek(10_000)
        assert await consumer.poll(timeout=0.2) is None
        assert consumer.current_offset == 10_000
        consumer.rewind()
        assert await consume_all(consumer, 3) == VALUES[:3]


async def test_d5_seek_to_end_uses_the_u64_max_tail(server: LanceServer) -> None:
    """0.2.9 used 2**63-1, got CatchingUp, and jumped to offset 2**63+7."""
    topic_id = await make_topic(server, "d5")
    await produce(server, topic_id, VALUES[:10])
    end = sum(5 + len(v) for v in VALUES[:10])
    async with await StandaloneConsumer.connect(
        server.address, consumer_config(topic_id)
    ) as consumer:
        consumer.seek_to_end()
        assert await consumer.poll(timeout=0.2) is None
        assert consumer.current_offset == end
        await produce(server, topic_id, [b"after-the-end"])
        assert await consume_all(consumer, 1) == [b"after-the-end"]


async def test_d6_poll_timeout_never_desynchronises(server: LanceServer, proxy: object) -> None:
    """0.2.9 raised on a 0.1 s poll timeout and then read each answer one request late."""
    topic_id = await make_topic(server, "d6")
    await produce(server, topic_id, VALUES)
    tcp_proxy = await proxy(server.address)  # type: ignore[operator]
    tcp_proxy.delay_s = 0.15
    config = consumer_config(topic_id, max_fetch_bytes=512)
    async with await StandaloneConsumer.connect(tcp_proxy.address, config) as consumer:
        delivered = await poll_values(consumer, len(VALUES), timeout=30, poll_timeout=0.05)
        assert delivered == VALUES


async def test_d7_compression_survives_a_verbatim_server(server: LanceServer) -> None:
    """0.2.9 sent a bare LZ4 block flagged 0x01; the server stored it and readers got nothing."""
    topic_id = await make_topic(server, "d7")
    values = [b"compressible " * 20 + b"%d" % i for i in range(200)]
    await produce(server, topic_id, values, compression=True, linger_ms=50)
    async with await StandaloneConsumer.connect(
        server.address, consumer_config(topic_id)
    ) as consumer:
        assert await consume_all(consumer, len(values)) == values
        assert consumer.current_offset < sum(5 + len(v) for v in values) / 4


def fnv1a_64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) % 2**64
    return value


def test_d8_consumer_id_is_fnv1a_of_the_name_in_every_process() -> None:
    """0.2.9 used Python's salted hash(): a new consumer id in every process.

    The same id in processes with other hash seeds is checked in tests/client/test_consumer.py
    (test_consumer_id_is_fnv1a_64_and_the_same_in_another_process).
    """
    assert consumer_id_for("my-app") == fnv1a_64(b"my-app")
    assert consumer_id_for("a") == fnv1a_64(b"a") == 0xAF63DC4C8601EC8C


async def test_d9_server_error_reaches_the_waiting_send(server: LanceServer) -> None:
    """0.2.9 only logged the ErrorResponse; send() hung for 30 s."""
    loop = asyncio.get_running_loop()
    async with await Producer.connect(
        server.address, ProducerConfig(request_timeout_s=5.0)
    ) as producer:
        started = loop.time()
        with pytest.raises(TopicNotFoundError) as caught:
            await producer.send(topic_id=4242, data=b"nowhere")
        assert caught.value.server_text == "Unknown topic"
        assert loop.time() - started < 1.0


async def test_d10_reconnects_after_a_server_restart(server: LanceServer) -> None:
    """0.2.9 never reconnected: every call after a drop raised 'Not connected'."""
    topic_id = await make_topic(server, "d10")
    async with await Producer.connect(
        server.address, ProducerConfig(request_timeout_s=5.0)
    ) as producer:
        await producer.send(topic_id=topic_id, data=b"before")
        await server.restart()
        await producer.send(topic_id=topic_id, data=b"after")
        assert producer.metrics().reconnects >= 1
    async with await StandaloneConsumer.connect(
        server.address, consumer_config(topic_id)
    ) as consumer:
        assert await consume_all(consumer, 2) == [b"before", b"after"]


async def test_d11_waits_are_bounded_when_the_server_is_gone(server: LanceServer) -> None:
    """0.2.9 could block forever (drain, acks) and hid failures in flush()."""
    topic_id = await make_topic(server, "d11")
    config = ProducerConfig(request_timeout_s=0.3, delivery_timeout_s=0.5)
    loop = asyncio.get_running_loop()
    async with await Producer.connect(server.address, config) as producer:
        await server.stop()
        await producer.send_async(topic_id=topic_id, data=b"lost")
        started = loop.time()
        with pytest.raises(LanceError) as caught:
            await producer.flush(timeout=2.0)
        assert loop.time() - started < 2.5
        assert caught.value.retryable
        assert producer.metrics().records_failed == 1
    await server.start()


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_d12_batching_options_are_honoured(server: LanceServer) -> None:
    """0.2.9 ignored batch_size, linger_ms and max_pending_acks: one frame per record."""
    topic_id = await make_topic(server, "d12")
    config = ProducerConfig(batch_size=1 << 20, linger_ms=1000, request_timeout_s=5.0)
    async with await Producer.connect(server.address, config) as producer:
        for value in VALUES[:200]:
            await producer.send_async(topic_id=topic_id, data=value)
        assert producer.metrics().batches_sent == 0
        await producer.flush(timeout=5.0)
        metrics = producer.metrics()
        assert (metrics.batches_sent, metrics.records_acked) == (1, 200)

    server.faults = FaultConfig(ack_delay_ms=100)
    config = ProducerConfig(batch_size=64, linger_ms=0, max_pending_acks=4, request_timeout_s=5.0)
    async with await Producer.connect(server.address, config) as producer:
        for value in VALUES[:40]:
            await producer.send_async(topic_id=topic_id, data=value)
        await wait_for(lambda: producer.metrics().in_flight_batches == 4)
        assert producer.metrics().queued_batches > 0  # the rest wait for the window
        await producer.flush(timeout=10.0)


async def test_d13_typed_answers_and_honest_lag(server: LanceServer) -> None:
    """0.2.9: subscribe/commit returned {}, unsubscribe always raised, lag was always 0,
    set_retention returned an empty name, and [::1]:port could not be parsed."""
    topic_id = await make_topic(server, "d13")
    await produce(server, topic_id, VALUES[:100])
    async with LanceClient(admin_config(server)) as client:
        ack = await client.subscribe(topic_id, 0, 4096, 42)
        assert ack == SubscribeAck(42, 0)
        await client.commit_offset(topic_id, 42, 160)
        assert await client.subscribe(topic_id, 0, 4096, 42) == SubscribeAck(42, 160)
        await client.unsubscribe(topic_id, 42)
        topic = await client.set_retention(topic_id, max_age_secs=3600)
        assert (topic.name, topic.id) == ("d13", topic_id)
    config = consumer_config(topic_id, max_fetch_bytes=160)
    async with await StandaloneConsumer.connect(server.address, config) as consumer:
        result = await consumer.poll(timeout=1.0)
        assert result is not None
        total = sum(5 + len(v) for v in VALUES[:100])
        assert result.high_water_mark == total
        assert result.lag == total - result.end_offset > 0
    assert (parse_address("[::1]:1993").host, parse_address("[::1]:1993").port) == ("::1", 1993)


@pytest.mark.ours_only("binds lnc serve to ::1")
async def test_d13_ipv6_literal_connects(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    async with LanceServer(tmp_path / "v6", host="::1", port=0) as server:
        conn = await Connection.open(f"[::1]:{server.port}")
        assert await conn.ping() < 1
        await conn.close()


def test_d14_crc_is_ieee_not_crc32c() -> None:
    assert zlib.crc32(b"123456789") == 0xCBF43926
    assert KEEPALIVE_FRAME[8:12] == bytes.fromhex("061e9c53")


@pytest.mark.ours_only("starts lnc serve with auth tokens")
async def test_d15_cluster_status_and_auth(tmp_path: Path) -> None:
    async with LanceServer(tmp_path / "auth", port=0, auth_tokens=["s3cret"]) as server:
        config = ClientConfig(host=server.host, port=server.port, auth_token="s3cret")
        async with LanceClient(config) as client:
            status = await client.get_cluster_status()
            assert status.is_standalone
            assert status.is_leader
            topic_id = (await client.create_topic("d15")).id
        producer_config = ProducerConfig(auth_token="s3cret", request_timeout_s=5.0)
        async with await Producer.connect(server.address, producer_config) as producer:
            await producer.send(topic_id=topic_id, data=b"authenticated")
