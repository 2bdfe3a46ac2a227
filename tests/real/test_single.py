"""Behaviours of the real single server that `lnc serve` copies (needs LNC_TEST_LANCE_BIN).

Each is the real side of a row of docs/compatibility.md whose `lnc serve` side is tested in
tests/server: the bytes on the wire for an oversized frame behind complete ones, and which
directories the real server loads as topics.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from lnc_client import operations
from lnc_client.connection import Connection
from lnc_client.protocol.control import create_topic_payload
from lnc_client.protocol.frame import (
    HEADER_SIZE,
    KEEPALIVE_FRAME,
    ControlCommand,
    build_control_frame,
    build_ingest_frame,
)
from lnc_client.server import LanceServer

from ..real_lance import RealNode, lance_bin

pytestmark = pytest.mark.real_lance
TIMEOUT = 5.0


@pytest.fixture
async def node(tmp_path: Path) -> RealNode:
    binary = lance_bin()
    assert binary is not None
    return RealNode(binary, tmp_path / "data")


async def test_an_oversized_frame_behind_complete_ones_closes_without_their_acks(
    node: RealNode,
) -> None:
    await asyncio.to_thread(node.start)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", node.ports.client)
        writer.write(build_control_frame(ControlCommand.CREATE_TOPIC, create_topic_payload("t")))
        header = await asyncio.wait_for(reader.readexactly(HEADER_SIZE), TIMEOUT)
        await asyncio.wait_for(reader.readexactly(int.from_bytes(header[32:36], "little")), TIMEOUT)
        ok = build_ingest_frame(b"\x01\x01\x00\x00\x00a", batch_id=7, record_count=1, topic_id=1)
        too_large = b"LANC" + bytes(28) + (16 * 1024 * 1024 + 1).to_bytes(4, "little") + bytes(8)
        writer.write(ok + KEEPALIVE_FRAME + too_large)
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == KEEPALIVE_FRAME
        writer.close()
    finally:
        # its drain then waits out 25 s for the dropped batch's operation count: do not wait
        await asyncio.to_thread(node.stop, grace_s=1.0)


async def test_real_lance_loads_a_tombstone_that_holds_a_metadata_json(node: RealNode) -> None:
    """Why `lnc serve` renames metadata.json away before it renames a deleted topic's folder."""
    async with LanceServer(node.data_dir, port=0) as ours:
        conn = await Connection.open(ours.address)
        await operations.create_topic(conn, "gone")
        await conn.close()
    segments = node.data_dir / "segments"
    shutil.copytree(segments / "gone", segments / ".deleted-1-1")
    shutil.rmtree(segments / "gone")
    await asyncio.to_thread(node.start)
    try:
        conn = await Connection.open(node.address)
        names = [t.name for t in await operations.list_topics(conn, timeout=TIMEOUT)]
        await conn.close()
    finally:
        await asyncio.to_thread(node.stop)
    assert names == ["gone"]
