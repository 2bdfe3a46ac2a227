"""FaultProxy: each fault observed on the bytes a real TCP peer receives, then Lance through it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lnc_client.config import ProducerConfig, ReconnectConfig, StandaloneConfig
from lnc_client.consumer import StandaloneConsumer
from lnc_client.producer import Producer
from lnc_client.server import LanceServer
from lnc_client.testing import Direction, FaultProxy, LinkFaults

from ..helpers import poll_values, wait_for

TIMEOUT = 5.0


class Peer:
    """A TCP server that records what each connection sends and can answer with bytes."""

    def __init__(self) -> None:
        self.reads: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.eof = asyncio.Event()
        self.connected = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def received(self) -> bytes:
        return b"".join(self.reads)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        self.connected.set()
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                self.reads.append(data)
        self.eof.set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        assert self._server is not None
        for writer in self.writers:
            writer.transport.abort()
        self._server.close()


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    server = Peer()
    yield server
    await server.stop()


@pytest.fixture
async def proxy(peer: Peer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(await peer.start(), seed=7) as running:
        yield running


async def connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, _, port = proxy.address.rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def test_bytes_pass_unchanged_both_ways(proxy: FaultProxy, peer: Peer) -> None:
    reader, writer = await connect(proxy)
    writer.write(b"hello")
    await wait_for(lambda: peer.received == b"hello")
    peer.writers[0].write(b"world")
    assert await asyncio.wait_for(reader.readexactly(5), TIMEOUT) == b"world"
    assert proxy.stats.bytes == {Direction.UPSTREAM: 5, Direction.DOWNSTREAM: 5}
    writer.close()


async def test_latency_delays_each_direction_and_keeps_order(proxy: FaultProxy, peer: Peer) -> None:
    proxy.upstream = LinkFaults(latency_s=0.1)
    _reader, writer = await connect(proxy)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(5):
        writer.write(bytes([i]))
        await asyncio.sleep(0.01)
    await wait_for(lambda: len(peer.received) == 5)
    assert loop.time() - start >= 0.1
    assert peer.received == bytes(range(5))
    writer.close()


async def test_bandwidth_limit(proxy: FaultProxy, peer: Peer) -> None:
    proxy.upstream = LinkFaults(bandwidth_bps=100_000)
    _reader, writer = await connect(proxy)
    loop = asyncio.get_running_loop()
    start = loop.time()
    writer.write(bytes(40_000))
    await wait_for(lambda: len(peer.received) == 40_000)
    assert loop.time() - start >= 0.3  # 40 kB at 100 kB/s: 0.4 s
    writer.close()


async def test_cut_after_n_bytes_forwards_exactly_n_then_resets(
    proxy: FaultProxy, peer: Peer
) -> None:
    proxy.upstream = LinkFaults(cut_after_bytes=10)
    reader, writer = await connect(proxy)
    writer.write(bytes(range(30)))
    await asyncio.wait_for(peer.eof.wait(), TIMEOUT)
    assert peer.received == bytes(range(10))
    with contextlib.suppress(ConnectionError):
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    assert proxy.stats.cuts == 1
    await wait_for(lambda: proxy.connection_count == 0)
    writer.close()


async def test_cut_now_resets_every_connection(proxy: FaultProxy, peer: Peer) -> None:
    conns = [await connect(proxy) for _ in range(3)]
    await wait_for(lambda: proxy.connection_count == 3)
    assert proxy.cut() == 3
    for reader, writer in conns:
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        writer.close()


async def test_half_close_gives_the_client_eof_while_it_can_still_send(
    proxy: FaultProxy, peer: Peer
) -> None:
    reader, writer = await connect(proxy)
    await wait_for(lambda: proxy.connection_count == 1)
    proxy.half_close()
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    writer.write(b"still flowing")
    await wait_for(lambda: peer.received == b"still flowing")
    writer.close()


async def test_split_delivers_one_write_in_several_reads(proxy: FaultProxy, peer: Peer) -> None:
    proxy.upstream = LinkFaults(split=True)
    _reader, writer = await connect(proxy)
    data = bytes(range(256)) * 4
    writer.write(data)
    await wait_for(lambda: peer.received == data)
    assert len(peer.reads) > 1
    writer.close()


async def test_coalesce_merges_separate_writes(proxy: FaultProxy, peer: Peer) -> None:
    proxy.upstream = LinkFaults(coalesce=True, latency_s=0.05)
    _reader, writer = await connect(proxy)
    for i in range(20):
        writer.write(bytes([i]) * 10)
        await writer.drain()
        await asyncio.sleep(0.001)
    await wait_for(lambda: len(peer.received) == 200)
    assert peer.received == b"".join(bytes([i]) * 10 for i in range(20))
    assert len(peer.reads) < 20
    writer.close()


async def test_bit_flips_at_the_set_rate_and_counted(proxy: FaultProxy, peer: Peer) -> None:
    proxy.upstream = LinkFaults(flip_probability=0.01)
    _reader, writer = await connect(proxy)
    data = bytes(20_000)
    writer.write(data)
    await wait_for(lambda: len(peer.received) == len(data))
    flipped = sum(bin(b).count("1") for b in peer.received)
    assert flipped == proxy.stats.flipped_bits[Direction.UPSTREAM]
    assert 100 <= flipped <= 320  # 200 expected
    writer.close()


async def test_a_stalled_direction_stops_reading_until_healed(
    proxy: FaultProxy, peer: Peer
) -> None:
    proxy.downstream = LinkFaults(stalled=True)
    reader, writer = await connect(proxy)
    await asyncio.wait_for(peer.connected.wait(), TIMEOUT)
    server_side = peer.writers[0]
    chunk = bytes(1024 * 1024)
    for _ in range(8):
        server_side.write(chunk)
    await asyncio.sleep(0.2)
    assert server_side.transport.get_write_buffer_size() > 0  # the peer stopped reading
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.1)
    proxy.heal()
    got = await asyncio.wait_for(reader.readexactly(8 * len(chunk)), TIMEOUT)
    assert got == chunk * 8
    writer.close()


async def test_refuse_closes_new_connections(proxy: FaultProxy, peer: Peer) -> None:
    proxy.refuse = True
    reader, writer = await connect(proxy)
    with contextlib.suppress(ConnectionError):
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    assert proxy.stats.refused == 1
    writer.close()


async def test_lance_producer_and_consumer_through_a_hostile_network(tmp_path: Path) -> None:
    """Split, coalesced, delayed segments and two cuts: every record arrives, in order."""
    async with LanceServer(tmp_path, port=0) as server, FaultProxy(server.address, seed=3) as proxy:
        for direction in Direction:
            proxy.set_faults(direction, split=True, coalesce=True, latency_s=0.002)
        fast = ReconnectConfig(base_delay_ms=10, max_delay_ms=50)
        config = ProducerConfig(reconnect=fast, delivery_timeout_s=20.0)
        producer, topic = await Producer.connect_for_topic(proxy.address, "hostile", config)
        async with producer:
            for i in range(300):
                await producer.send_async(topic, f"{i:06d}".encode())
                if i in (100, 200):
                    await producer.flush()
                    proxy.cut()
            await producer.flush()
        consumer_config = StandaloneConfig(topic_id=topic, reconnect=fast)
        async with StandaloneConsumer(proxy.address, consumer_config) as consumer:
            values = await poll_values(consumer, 300, timeout=10)
    assert values == [f"{i:06d}".encode() for i in range(300)]
