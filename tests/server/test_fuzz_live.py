"""Adversarial byte streams against a live server (issue 9): it keeps serving an honest client,
its memory stays bounded, and the honest client's stored data is intact.

Hostile connections send, at random (seeded) points and sizes: pure random bytes; valid frames
with bits flipped; headers declaring 16 MiB followed by a trickle; and valid control frames of
every command with random payloads (DeleteTopic, SetRetention and ingest into the honest topic
excluded: those are legitimate requests, not attacks on the decoder). Meanwhile an honest client
ingests and reads back its own topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from pathlib import Path

import pytest

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
from .test_durability import create_topic, read_all

_SAFE_COMMANDS = [
    code
    for code in range(256)
    if code not in (ControlCommand.DELETE_TOPIC, ControlCommand.SET_RETENTION)
]


def _hostile_stream(rng: random.Random, honest_topic: int) -> list[bytes]:
    """One connection's worth of hostile chunks."""
    kind = rng.randrange(4)
    if kind == 0:
        return [rng.randbytes(rng.randrange(1, 4096)) for _ in range(rng.randrange(1, 6))]
    if kind == 1:
        frames = b"".join(
            build_ingest_frame(rng.randbytes(rng.randrange(1, 300)), i, 1, honest_topic + 1)
            for i in range(1, 6)
        )
        data = bytearray(frames)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return [bytes(data)]
    if kind == 2:
        header = encode_header(
            Flag.BATCH_MODE, batch_id=1, payload_length=16 * 1024 * 1024, topic_id=honest_topic
        )
        return [header, *(rng.randbytes(rng.randrange(1, 64)) for _ in range(3))]
    return [
        build_control_frame(rng.choice(_SAFE_COMMANDS), rng.randbytes(rng.randrange(0, 64)))
        for _ in range(rng.randrange(1, 8))
    ]


async def _attack(port: int, rng: random.Random, honest_topic: int) -> None:
    with contextlib.suppress(ConnectionError, TimeoutError, asyncio.IncompleteReadError):
        conn = await RawConn.open(port)
        try:
            for chunk in _hostile_stream(rng, honest_topic):
                await conn.send(chunk)
                await asyncio.sleep(rng.random() * 0.01)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.reader.read(65536), 0.05)
        finally:
            conn.writer.transport.abort()


@pytest.mark.parametrize("seed", [1, 2])
async def test_hostile_streams_do_not_disturb_an_honest_client(tmp_path: Path, seed: int) -> None:
    await fuzz(tmp_path, seed, rounds=12)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", range(100, 110))
async def test_many_hostile_streams(tmp_path: Path, seed: int) -> None:
    await fuzz(tmp_path, seed, rounds=100)


async def fuzz(tmp_path: Path, seed: int, *, rounds: int) -> None:
    """`rounds` x (10 honest batches alongside 12 hostile connections)."""
    rng = random.Random(seed)
    config = ServerConfig(
        data_dir=tmp_path, port=0, frame_timeout_secs=0.5, max_buffered_bytes_total=8 << 20
    )
    async with LanceServer(config=config) as server:
        topic = await create_topic(server.port, "honest")
        honest = await RawConn.open(server.port)
        payloads: list[bytes] = []
        peak = 0
        for round_ in range(rounds):
            attacks = [_attack(server.port, rng, topic) for _ in range(12)]
            batch = [encode_values([struct.pack("<II", round_, i) * 8]) for i in range(10)]
            first = len(payloads) + 1
            frames = b"".join(
                build_ingest_frame(p, first + i, 1, topic) for i, p in enumerate(batch)
            )
            results = await asyncio.gather(honest.send(frames), *attacks)
            assert results[0] is None
            expected = [build_ack_frame(first + i) for i in range(10)]
            assert await honest.read_frames(10) == expected
            payloads += batch
            peak = max(peak, server.buffered_bytes)
            await honest.send(KEEPALIVE_FRAME)
            assert await honest.read_frame() == KEEPALIVE_FRAME
        assert peak <= 8 << 20
        assert await read_all(honest, topic) == b"".join(payloads)  # nothing damaged
        await honest.close()
        async with asyncio.timeout(5):  # every hostile connection is gone in the end
            while server.connection_count:
                await asyncio.sleep(0.05)
