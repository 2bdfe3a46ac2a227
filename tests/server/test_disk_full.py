"""Disk full (issue 9.3): each refused ingest gets the server's I/O error, the connection stays
open, and once there is space again writing resumes with nothing acknowledged lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lnc_client.protocol.frame import ControlCommand, build_ack_frame, build_control_frame
from lnc_client.server import FaultConfig, LanceServer

from .conftest import RawConn
from .test_durability import create_topic, read_all
from .test_failures import RECORD, ingest

ENOSPC_TEXT = b"I/O error: No space left on device (os error 28)"
ENOSPC_REPLY = build_control_frame(ControlCommand.ERROR_RESPONSE, ENOSPC_TEXT)


async def test_disk_full_answers_each_ingest_with_the_io_error_and_resumes(
    tmp_path: Path,
) -> None:
    async with LanceServer(tmp_path, port=0) as server:
        topic = await create_topic(server.port, "full")
        conn = await RawConn.open(server.port)
        await conn.send(ingest(1, topic))
        assert await conn.read_frame() == build_ack_frame(1)

        server.faults = FaultConfig(disk_full=True)
        await conn.send(ingest(2, topic) + ingest(3, topic))
        async with asyncio.timeout(1):  # promptly, not after a client timeout
            assert await conn.read_frames(2) == [ENOSPC_REPLY, ENOSPC_REPLY]

        server.faults = FaultConfig()  # space is back: same connection, no reconnect
        await conn.send(ingest(4, topic))
        assert await conn.read_frame() == build_ack_frame(4)
        stored = await read_all(conn, topic)
        await conn.close()
    assert stored == RECORD * 2  # batches 1 and 4; the refused bytes were cut back
    async with LanceServer(tmp_path, port=0) as restarted:
        reader = await RawConn.open(restarted.port)
        assert await read_all(reader, topic) == RECORD * 2
        await reader.close()


async def test_an_earlier_held_ack_and_a_later_refusal_keep_their_order(tmp_path: Path) -> None:
    """A batch written before the disk filled keeps its Ack, ahead of the later refusal."""
    async with LanceServer(tmp_path, port=0, faults=FaultConfig(ack_delay_ms=50)) as server:
        topic = await create_topic(server.port, "mixed")
        conn = await RawConn.open(server.port)
        await conn.send(ingest(1, topic))
        await asyncio.sleep(0.01)  # written, Ack held by the delay
        server.faults = FaultConfig(disk_full=True, ack_delay_ms=50)
        await conn.send(ingest(2, topic))
        assert await conn.read_frames(2) == [build_ack_frame(1), ENOSPC_REPLY]
        await conn.close()
