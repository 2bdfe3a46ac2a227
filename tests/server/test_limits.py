"""Untrusted peers (issue 9.11): memory follows the bytes received, bounded per connection and in
total; a frame that does not complete times out; connections are limited; an idle connection
costs little."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

from lnc_client.protocol.control import authenticate_payload
from lnc_client.protocol.frame import (
    KEEPALIVE_FRAME,
    ControlCommand,
    Flag,
    build_ack_frame,
    build_control_frame,
    build_ingest_frame,
    encode_header,
)
from lnc_client.protocol.records import encode_values
from lnc_client.server import LanceServer, ServerConfig

from .conftest import RawConn
from .test_durability import create_topic

MIB = 1024 * 1024
BIG_HEADER = encode_header(Flag.BATCH_MODE, batch_id=1, payload_length=16 * MIB, topic_id=1)


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def _allocated_by(
    open_and_send: Callable[[], Awaitable[list[RawConn]]],
) -> tuple[int, list[RawConn]]:
    """Python memory allocated (by server and test alike) while `open_and_send` runs."""
    tracemalloc.start()
    try:
        before = _traced()
        conns = await open_and_send()
        return _traced() - before, conns
    finally:
        tracemalloc.stop()


async def _settle(conns: list[RawConn]) -> None:
    """Every connection answers a keepalive: the server has handled what was sent before."""
    for conn in conns:
        await conn.send(KEEPALIVE_FRAME)
        assert await conn.read_frame() == KEEPALIVE_FRAME


async def test_a_header_declaring_16_mib_does_not_pin_16_mib(tmp_path: Path) -> None:
    async with LanceServer(tmp_path, port=0) as server:

        async def declare_16_mib() -> list[RawConn]:
            conns = [await RawConn.open(server.port) for _ in range(8)]
            for part in (BIG_HEADER, b"\x01", b"\x02"):  # three reads on every connection
                for conn in conns:
                    await conn.send(part)
                await asyncio.sleep(0.05)
            return conns

        grown, conns = await _allocated_by(declare_16_mib)
        assert grown < 8 * 64 * 1024, f"{grown} bytes for 8 connections"  # was 8 x 16 MiB
        assert server.buffered_bytes <= 8 * 16 * 1024
        for conn in conns:
            await conn.close()


async def test_an_idle_connection_costs_little(tmp_path: Path) -> None:
    async with LanceServer(tmp_path, port=0) as server:

        async def idle_connections() -> list[RawConn]:
            conns = [await RawConn.open(server.port) for _ in range(40)]
            await _settle(conns)
            return conns

        grown, conns = await _allocated_by(idle_connections)
        per_connection = grown / len(conns)
        assert per_connection < 48 * 1024, per_connection  # was about 260 KiB
        for conn in conns:
            await conn.close()


async def test_a_frame_that_does_not_complete_times_out(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path, port=0, frame_timeout_secs=0.3)
    async with LanceServer(config=config) as server:
        topic = await create_topic(server.port, "slow")
        stuck = await RawConn.open(server.port)
        frame = build_ingest_frame(encode_values([b"x" * 100]), batch_id=1, record_count=1)
        await stuck.send(frame[:50])
        busy = await RawConn.open(server.port)  # completes a frame every 0.1 s: stays open
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(8):
            await busy.send(KEEPALIVE_FRAME)
            assert await busy.read_frame() == KEEPALIVE_FRAME
            await asyncio.sleep(0.1)
        assert await stuck.expect_closed() == b""
        assert loop.time() - start < 2
        ingest = build_ingest_frame(
            encode_values([b"y"]), batch_id=2, record_count=1, topic_id=topic
        )
        await busy.send(ingest)
        assert await busy.read_frame() == build_ack_frame(2)
        await stuck.close()
        await busy.close()


async def test_connections_beyond_the_limit_are_closed_at_once(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path, port=0, max_connections=3)
    async with LanceServer(config=config) as server:
        conns = [await RawConn.open(server.port) for _ in range(3)]
        await _settle(conns)
        extra = await RawConn.open(server.port)
        assert await extra.expect_closed() == b""
        await _settle(conns)  # the others keep working
        await conns.pop().close()
        await asyncio.sleep(0.05)
        again = await RawConn.open(server.port)
        await _settle([again])
        for conn in [*conns, extra, again]:
            await conn.close()


async def test_receive_buffers_are_bounded_in_total(tmp_path: Path) -> None:
    config = ServerConfig(
        data_dir=tmp_path, port=0, read_buffer_bytes=64 * 1024, max_buffered_bytes_total=MIB
    )
    async with LanceServer(config=config) as server:
        other = await RawConn.open(server.port)
        hog = await RawConn.open(server.port)
        await hog.send(BIG_HEADER + bytes(3 * MIB // 2))
        assert await hog.expect_closed() == b""
        await _settle([other])
        assert server.buffered_bytes <= MIB
        await hog.close()
        await other.close()


async def test_before_authenticate_frames_are_small(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path, port=0, max_unauthenticated_payload=1024)
    async with LanceServer(config=config, auth_tokens=["s3cret"]) as server:
        big = build_control_frame(ControlCommand.LIST_TOPICS, bytes(2048))
        anonymous = await RawConn.open(server.port)
        await anonymous.send(big)
        assert await anonymous.expect_closed() == b""
        authed = await RawConn.open(server.port)
        await authed.send(
            build_control_frame(ControlCommand.AUTHENTICATE, authenticate_payload("s3cret"))
        )
        assert (await authed.read_frame())[12] == ControlCommand.AUTHENTICATE_RESPONSE
        await authed.send(big)
        assert (await authed.read_frame())[12] == ControlCommand.TOPIC_RESPONSE
        await anonymous.close()
        await authed.close()
