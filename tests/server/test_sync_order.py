"""Every Ack and every disk-bound reply follows the syncs that make it durable (issue 9.15).

A SIGKILL keeps the page cache, so the crash tests cannot see a missing `fdatasync`. Here the
server's `os.fdatasync` / `os.fsync` are intercepted: each one first sleeps a little (so a reply
sent without waiting for it overtakes it), then syncs, then records what it made durable: the
size of a segment file (by inode) or the entries of a directory. When a reply arrives, the test
checks that the records already cover it: the acknowledged bytes of the topic are synced, each
segment holding them was in a directory sync after it was created, and its durable size was
recorded in its `.durable` file.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lnc_client.protocol.control import create_topic_payload, set_retention_payload
from lnc_client.protocol.frame import (
    ControlCommand,
    build_ack_frame,
    build_control_frame,
    build_ingest_frame,
)
from lnc_client.protocol.records import encode_values
from lnc_client.server import FaultConfig, LanceServer

from .conftest import RawConn

C = ControlCommand
_DELAY = 0.01


@dataclass
class SyncLog:
    """What the intercepted syncs made durable."""

    data: dict[int, int] = field(default_factory=dict)  # segment inode -> synced size
    marks: dict[str, int] = field(default_factory=dict)  # .durable file stem -> synced slots
    files: set[int] = field(default_factory=set)  # other files fsynced (metadata.json)
    dirs: dict[str, list[dict[str, int]]] = field(default_factory=dict)  # path -> listings
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, fd: int) -> None:
        info = os.fstat(fd)
        path = os.readlink(f"/proc/self/fd/{fd}")
        with self.lock:
            if stat.S_ISDIR(info.st_mode):
                listing = {entry.name: entry.inode() for entry in os.scandir(path)}
                self.dirs.setdefault(path, []).append(listing)
            elif path.endswith(".lnc"):
                self.data[info.st_ino] = max(self.data.get(info.st_ino, 0), info.st_size)
            elif path.endswith(".durable"):
                self.marks[Path(path).stem] = self.marks.get(Path(path).stem, 0) + 1
            else:
                self.files.add(info.st_ino)

    def in_dir_sync(self, directory: Path, inode: int) -> bool:
        with self.lock:
            listings = self.dirs.get(str(directory), [])
            return any(inode in listing.values() for listing in listings)

    def last_listing(self, directory: Path) -> dict[str, int]:
        with self.lock:
            return dict(self.dirs.get(str(directory), [{}])[-1])


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> SyncLog:
    log = SyncLog()

    def intercept(real: Callable[[int], None]) -> Callable[[int], None]:
        def sync(fd: int) -> None:
            time.sleep(_DELAY)
            real(fd)
            log.record(fd)

        return sync

    monkeypatch.setattr(os, "fdatasync", intercept(os.fdatasync))
    monkeypatch.setattr(os, "fsync", intercept(os.fsync))
    return log


def assert_acked_bytes_durable(log: SyncLog, topic_dir: Path, acked: int) -> None:
    """The first `acked` bytes of the topic are synced, in segments whose entries are synced."""
    segments = sorted(topic_dir.glob("*.lnc"))
    inodes = [p.stat().st_ino for p in segments]
    with log.lock:
        durable = sum(log.data.get(inode, 0) for inode in inodes)
    assert durable >= acked, f"Ack for byte {acked} before its fdatasync ({durable} synced)"
    for path, inode in zip(segments, inodes, strict=True):
        if log.data.get(inode):
            assert log.in_dir_sync(topic_dir, inode), f"{path.name} acked before its dir sync"
            assert log.marks.get(path.name.split("-")[0].removesuffix(".lnc")), path.name


def batch(index: int, size: int) -> bytes:
    return encode_values([index.to_bytes(4, "little") * (size // 4)])


async def create(conn: RawConn, name: str) -> int:
    await conn.send(build_control_frame(C.CREATE_TOPIC, create_topic_payload(name)))
    frame = await conn.read_frame()
    assert frame[12] == C.TOPIC_RESPONSE
    return int(frame[44:].split(b'"id":')[1].split(b",")[0])


@pytest.mark.parametrize(
    ("segment_max_bytes", "sizes"),
    [
        pytest.param(1 << 30, [100, 5000, 100], id="one-segment"),
        pytest.param(3000, [1000, 2500, 100, 4000, 10], id="rotations"),
    ],
)
async def test_every_ack_follows_the_syncs_covering_it(
    tmp_path: Path, syncs: SyncLog, segment_max_bytes: int, sizes: list[int]
) -> None:
    async with LanceServer(tmp_path, port=0, segment_max_bytes=segment_max_bytes) as server:
        conn = await RawConn.open(server.port)
        topics = [await create(conn, "a"), await create(conn, "b")]
        acked = dict.fromkeys(topics, 0)
        batch_id = 0
        for size in sizes:
            frames = []
            for topic in topics:  # two topics in one read: one commit, one sync each
                batch_id += 1
                payload = batch(batch_id, size)
                frames.append(build_ingest_frame(payload, batch_id, 1, topic))
                acked[topic] += len(payload)
            await conn.send(b"".join(frames))
            for ack in (batch_id - 1, batch_id):
                assert await conn.read_frame() == build_ack_frame(ack)
            for topic, name in zip(topics, "ab", strict=True):
                assert_acked_bytes_durable(syncs, server.data_dir / "segments" / name, acked[topic])
        await conn.close()


async def test_ack_after_a_failed_write_follows_its_sync(tmp_path: Path, syncs: SyncLog) -> None:
    async with LanceServer(tmp_path, port=0) as server:
        conn = await RawConn.open(server.port)
        topic = await create(conn, "t")
        server.faults = FaultConfig(disk_full=True)
        await conn.send(build_ingest_frame(batch(1, 200), 1, 1, topic))
        assert (await conn.read_frame())[12] == C.ERROR_RESPONSE
        server.faults = FaultConfig()
        payload = batch(2, 300)
        await conn.send(build_ingest_frame(payload, 2, 1, topic))
        assert await conn.read_frame() == build_ack_frame(2)
        assert_acked_bytes_durable(syncs, server.data_dir / "segments" / "t", len(payload))
        await conn.close()


async def test_control_replies_follow_their_syncs(tmp_path: Path, syncs: SyncLog) -> None:
    async with LanceServer(tmp_path, port=0) as server:
        root = server.data_dir / "segments"
        conn = await RawConn.open(server.port)
        topic = await create(conn, "t")
        directory = root / "t"
        meta = directory / "metadata.json"
        assert syncs.in_dir_sync(root, directory.stat().st_ino)  # the topic directory
        assert meta.stat().st_ino in syncs.files  # metadata.json's bytes
        assert syncs.last_listing(directory)["metadata.json"] == meta.stat().st_ino

        await conn.send(build_control_frame(C.SET_RETENTION, set_retention_payload(topic, 60, 0)))
        assert (await conn.read_frame())[12] == C.TOPIC_RESPONSE
        assert meta.stat().st_ino in syncs.files
        assert syncs.last_listing(directory)["metadata.json"] == meta.stat().st_ino

        inode = directory.stat().st_ino
        await conn.send(build_control_frame(C.DELETE_TOPIC, topic.to_bytes(4, "little")))
        assert (await conn.read_frame())[12] == C.TOPIC_RESPONSE
        assert inode not in syncs.last_listing(root).values()  # the deletion is durable
        await conn.close()
