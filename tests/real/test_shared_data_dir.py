"""One data directory, both servers, both directions (needs LNC_TEST_LANCE_BIN).

`lnc serve` writes topics (several segments each, a deleted topic, a stray `.lnc` file, a broken
metadata.json), then the real server is started on the same directory and must list the same
topics and serve the same bytes at the same offsets, and take more writes; then `lnc serve`
again. The reverse starts from a directory the real server wrote.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lnc_client import operations
from lnc_client.connection import Connection
from lnc_client.errors import ServerCatchingUpError
from lnc_client.producer import Producer
from lnc_client.protocol.control import TopicInfo
from lnc_client.protocol.records import encode_values
from lnc_client.server import LanceServer

from ..real_lance import RealNode, lance_bin

pytestmark = pytest.mark.real_lance

Snapshot = dict[tuple[int, str], bytes]


async def snapshot(address: str) -> Snapshot:
    """Every topic (id, name) and all its bytes, read in 4 KiB windows from offset 0."""
    conn = await Connection.open(address)
    try:
        topics: list[TopicInfo] = await operations.list_topics(conn, timeout=5.0)
        result: Snapshot = {}
        for topic in topics:
            data = bytearray()
            while True:
                try:
                    window = await operations.fetch(conn, topic.id, len(data), 4096, timeout=5.0)
                except ServerCatchingUpError:
                    break
                if not window.data:
                    break
                data += window.data
            result[(topic.id, topic.name)] = bytes(data)
        return result
    finally:
        await conn.close()


async def write(address: str, rounds: int, tag: bytes) -> None:
    conn = await Connection.open(address)
    try:
        topics = await operations.list_topics(conn, timeout=5.0)
    finally:
        await conn.close()
    async with Producer(address) as producer:
        for n in range(rounds):
            for topic in topics:
                await producer.send_batch(topic.id, [tag + b"-%d-%d" % (topic.id, n)] * 5)


def real_node(data_dir: Path) -> RealNode:
    binary = lance_bin()
    assert binary is not None
    return RealNode(binary, data_dir)


async def test_real_lance_serves_what_lnc_serve_wrote_and_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with LanceServer(data, port=0, segment_max_bytes=2048) as ours:
        conn = await Connection.open(ours.address)
        for name in ("alpha", "beta", "doomed", "broken"):
            await operations.create_topic(conn, name)
        await conn.close()
        await write(ours.address, 40, b"ours")
        conn = await Connection.open(ours.address)
        await operations.delete_topic(conn, 3)
        await conn.close()
    segments = data / "segments"
    (segments / "broken" / "metadata.json").write_text("{")
    (segments / "alpha" / "zz-stray.lnc").write_bytes(encode_values([b"stray"]))
    async with LanceServer(data, port=0) as ours:
        expected = await snapshot(ours.address)
    assert sorted(expected) == [(1, "alpha"), (2, "beta")]
    assert len(list((segments / "beta").glob("*.lnc"))) >= 2  # rotated at least once

    node = real_node(data)
    await asyncio.to_thread(node.start)
    try:
        assert await snapshot(node.address) == expected
        await write(node.address, 5, b"real")
        expected = await snapshot(node.address)
    finally:
        await asyncio.to_thread(node.stop)
    async with LanceServer(data, port=0) as ours:
        assert await snapshot(ours.address) == expected


async def test_lnc_serve_serves_what_real_lance_wrote_and_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    node = real_node(data)
    await asyncio.to_thread(node.start)
    try:
        conn = await Connection.open(node.address)
        for name in ("one", "two", "three"):
            await operations.create_topic(conn, name)
        await operations.delete_topic(conn, 2)
        await conn.close()
        await write(node.address, 30, b"real")
        expected = await snapshot(node.address)
    finally:
        await asyncio.to_thread(node.stop)
    assert sorted(expected) == [(1, "one"), (3, "three")]
    async with LanceServer(data, port=0) as ours:
        assert await snapshot(ours.address) == expected
        await write(ours.address, 5, b"ours")
        conn = await Connection.open(ours.address)
        created = await operations.create_topic(conn, "four")
        await conn.close()
        assert created.id == 4
        expected = await snapshot(ours.address)
    await asyncio.to_thread(node.start)
    try:
        assert await snapshot(node.address) == expected
    finally:
        await asyncio.to_thread(node.stop)
