"""Durability and concurrency: SIGKILL during heavy ingest, and 50 concurrent connections.

The crash test runs the server as a real process (`python -m lnc_client.server`), kills it with
SIGKILL while several connections stream batches, restarts it and checks that every
acknowledged batch is stored intact, in order, with no torn record.
"""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

from lnc_client.protocol.control import create_topic_payload, fetch_payload
from lnc_client.protocol.frame import (
    HEADER_SIZE,
    ControlCommand,
    build_ack_frame,
    build_control_frame,
    build_ingest_frame,
)
from lnc_client.protocol.records import decode_stream, encode_values
from lnc_client.server import LanceServer

from .conftest import TIMEOUT, RawConn

C = ControlCommand
_RECORD = struct.Struct("<HI")


def batch_payload(conn_id: int, batch_id: int, records: int, size: int = 100) -> bytes:
    pad = bytes(size - 5 - _RECORD.size)
    return encode_values([_RECORD.pack(conn_id, batch_id) + pad for _ in range(records)])


async def read_all(conn: RawConn, topic: int) -> bytes:
    offset, out = 0, bytearray()
    while True:
        await conn.send(build_control_frame(C.FETCH, fetch_payload(topic, offset, 4 * 1024 * 1024)))
        frame = await conn.read_frame()
        assert frame[12] == C.FETCH_RESPONSE
        data = frame[HEADER_SIZE + 16 :]
        if not data:
            return bytes(out)
        out += data
        offset += len(data)


def batches_by_connection(stored: bytes) -> dict[int, list[int]]:
    """Decode the stored stream; it must hold whole records only, grouped into whole batches."""
    records, used = decode_stream(stored)
    assert used == len(stored), "torn record in the stored data"
    seen: dict[int, list[int]] = {}
    for record in records:
        conn_id, batch_id = _RECORD.unpack_from(record.value)
        batches = seen.setdefault(conn_id, [])
        if not batches or batches[-1] != batch_id:
            batches.append(batch_id)
    return seen


async def create_topic(port: int, name: str) -> int:
    conn = await RawConn.open(port)
    await conn.send(build_control_frame(C.CREATE_TOPIC, create_topic_payload(name)))
    frame = await conn.read_frame()
    await conn.close()
    return int(frame[HEADER_SIZE:].split(b'"id":')[1].split(b",")[0])


async def test_fifty_connections_every_byte_accounted_for(tmp_path: Path) -> None:
    async with LanceServer(tmp_path, port=0, segment_max_bytes=256 * 1024) as server:
        topics = [await create_topic(server.port, f"t{i}") for i in range(5)]

        async def client(conn_id: int) -> None:
            conn = await RawConn.open(server.port)
            topic = topics[conn_id % len(topics)]
            frames = [
                build_ingest_frame(
                    batch_payload(conn_id, b, 20), batch_id=b, record_count=20, topic_id=topic
                )
                for b in range(1, 21)
            ]
            await conn.send(b"".join(frames))
            assert await conn.read_frames(20) == [build_ack_frame(b) for b in range(1, 21)]
            await conn.close()

        await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(50))), 20)
        reader = await RawConn.open(server.port)
        total = 0
        for index, topic in enumerate(topics):
            stored = await read_all(reader, topic)
            total += len(stored)
            seen = batches_by_connection(stored)
            assert sorted(seen) == [c for c in range(50) if c % len(topics) == index]
            assert all(batches == list(range(1, 21)) for batches in seen.values())
        assert total == 50 * 20 * 20 * 100
        await reader.close()


def _spawn(data_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lnc_client.server",
            "--data-dir",
            str(data_dir),
            "--port",
            "0",
            "--segment-max-bytes",
            str(2 * 1024 * 1024),
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Kill the process if it still runs, wait for it (bounded) and close its pipe."""
    if process.poll() is None:
        process.kill()
    process.wait(10)
    assert process.stdout is not None
    process.stdout.close()


async def _start_process(data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    process = await asyncio.to_thread(_spawn, data_dir)
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 20)
    except BaseException:
        await asyncio.to_thread(_reap, process)
        raise
    assert line.startswith(b"listening on 127.0.0.1:"), line
    return process, int(line.rsplit(b":", 1)[1])


async def test_sigkill_during_heavy_ingest_loses_no_acked_batch(tmp_path: Path) -> None:
    process, port = await _start_process(tmp_path)
    try:
        topic = await create_topic(port, "crash")
        acked: dict[int, list[int]] = {}

        async def producer(conn_id: int) -> None:
            conn = await RawConn.open(port)
            acks = acked.setdefault(conn_id, [])
            batch = 0
            try:
                while True:
                    frames = []
                    for _ in range(8):
                        batch += 1
                        payload = batch_payload(conn_id, batch, 100)
                        frames.append(
                            build_ingest_frame(
                                payload, batch_id=batch, record_count=100, topic_id=topic
                            )
                        )
                    await conn.send(b"".join(frames))
                    for _ in frames:
                        frame = await conn.read_frame()
                        acks.append(struct.unpack_from("<Q", frame, 12)[0])
            except (ConnectionError, asyncio.IncompleteReadError):
                return
            finally:
                await conn.close()

        tasks = [asyncio.create_task(producer(i)) for i in range(4)]
        while sum(len(a) for a in acked.values()) < 400:
            await asyncio.sleep(0.01)
        assert process.poll() is None, "the server died before the kill"
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    finally:
        await asyncio.to_thread(_reap, process)
    assert process.returncode == -signal.SIGKILL

    async with LanceServer(tmp_path, port=0) as server:
        reader = await RawConn.open(server.port)
        seen = batches_by_connection(await read_all(reader, topic))
        await reader.close()
    for conn_id, acks in acked.items():
        assert acks == list(range(1, len(acks) + 1))  # FIFO acks
        stored = seen.get(conn_id, [])
        assert stored == list(range(1, len(stored) + 1))  # whole batches, in order
        assert len(stored) >= len(acks), f"connection {conn_id} lost acknowledged batches"
