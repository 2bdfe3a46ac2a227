"""The group-commit writer makes many topics durable with syncfs, few with fdatasync each.

A topic's sync is two `fdatasync`s (its segment, then its `.durable` mark); many topics on one
filesystem take two `syncfs` calls instead (bytes, then marks), counted as one sync.
"""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest

from lnc_client.server.storage import writer as writer_module
from lnc_client.server.storage.segments import TopicLog, mark_path, read_mark
from lnc_client.server.storage.writer import SYNCFS_MIN_TOPICS, GroupCommitWriter


async def commit_once(logs: list[TopicLog], payload: bytes) -> tuple[GroupCommitWriter, object]:
    """Submit one write touching every log; return the writer and what `done` received."""
    loop = asyncio.get_running_loop()
    writer = GroupCommitWriter(loop, max_queue_bytes=1 << 20)
    writer.start()
    outcome: asyncio.Future[object] = loop.create_future()
    writer.submit([(log, payload) for log in logs], len(payload) * len(logs), outcome.set_result)
    try:
        return writer, await asyncio.wait_for(outcome, 10)
    finally:
        await writer.stop(10)


def count_fdatasyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fdatasync

    def counted(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counted)
    return calls


async def test_many_topics_in_one_commit_take_one_syncfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fdatasyncs = count_fdatasyncs(monkeypatch)
    logs = [TopicLog(tmp_path / f"t{i}", 1 << 20) for i in range(SYNCFS_MIN_TOPICS + 2)]
    writer, error = await commit_once(logs, b"\x01\x03\x00\x00\x00abc")
    assert error is None
    assert writer.syncs == 1
    assert fdatasyncs == []
    for log in logs:
        assert log.snapshot.read(0, 100) == b"\x01\x03\x00\x00\x00abc"
        assert not log.dirty
        (segment,) = log.directory.glob("*.lnc")
        assert read_mark(mark_path(segment)) == 8  # the durable size was recorded too
        log.close()


async def test_few_topics_take_one_fdatasync_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fdatasyncs = count_fdatasyncs(monkeypatch)
    logs = [TopicLog(tmp_path / f"t{i}", 1 << 20) for i in range(SYNCFS_MIN_TOPICS - 1)]
    writer, error = await commit_once(logs, b"xyz")
    assert error is None
    assert writer.syncs == len(fdatasyncs) // 2 == len(logs)
    assert [log.snapshot.read(0, 10) for log in logs] == [b"xyz"] * len(logs)
    for log in logs:
        log.close()


async def test_a_failed_syncfs_fails_the_writes_and_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(fd: int) -> bool:
        raise OSError(errno.EIO, "syncfs: Input/output error")

    monkeypatch.setattr(writer_module, "syncfs", failing)
    logs = [TopicLog(tmp_path / f"t{i}", 1 << 20) for i in range(SYNCFS_MIN_TOPICS)]
    _, error = await commit_once(logs, b"lost")
    assert isinstance(error, OSError)
    assert error.errno == errno.EIO
    for log in logs:
        assert log.snapshot.read(0, 100) == b""
        segments = list(log.directory.glob("*.lnc"))
        assert [p.stat().st_size for p in segments] == [0]  # cut back to the durable size
        log.close()


async def test_without_syncfs_many_topics_fall_back_to_fdatasync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "syncfs", lambda fd: False)
    fdatasyncs = count_fdatasyncs(monkeypatch)
    logs = [TopicLog(tmp_path / f"t{i}", 1 << 20) for i in range(SYNCFS_MIN_TOPICS)]
    writer, error = await commit_once(logs, b"ok")
    assert error is None
    assert writer.syncs == len(fdatasyncs) // 2 == len(logs)
    assert [log.snapshot.read(0, 10) for log in logs] == [b"ok"] * len(logs)
    for log in logs:
        log.close()
