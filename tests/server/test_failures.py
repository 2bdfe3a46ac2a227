"""Internal failures: a crashing writer thread, failing reads, retention bugs, failing deletes.

Each test breaks one piece of the server with a monkeypatch and checks what a client sees on
the wire (exact frames, or a close without a reply) and that the server stays consistent.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import shutil
import struct
import threading
from pathlib import Path

import pytest

from lnc_client.protocol.control import (
    create_topic_payload,
    create_topic_with_retention_payload,
    fetch_payload,
    set_retention_payload,
)
from lnc_client.protocol.frame import (
    HEADER_SIZE,
    KEEPALIVE_FRAME,
    ControlCommand,
    build_ack_frame,
    build_control_frame,
    build_ingest_frame,
)
from lnc_client.server import LanceServer, ServerConfig, ServerThread
from lnc_client.server import app as app_module
from lnc_client.server.storage import segments
from lnc_client.server.storage.topics import TopicRegistry

from .conftest import RawConn

C = ControlCommand
RECORD = b"\x01\x05\x00\x00\x00hello"


def ingest(batch_id: int, topic: int = 1) -> bytes:
    return build_ingest_frame(RECORD, batch_id=batch_id, record_count=1, topic_id=topic)


def error_reply(text: str) -> bytes:
    return build_control_frame(C.ERROR_RESPONSE, text.encode())


async def test_a_crashing_writer_fails_every_write_and_call_and_stop_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # a queue limit of one payload: were the failed write's bytes never released, no
    # connection would be read again
    config = ServerConfig(tmp_path, port=0, writer_queue_max_bytes=len(RECORD))
    server = LanceServer(config=config)
    await server.start()
    conn = await RawConn.open(server.port)
    assert (await conn.ask(C.CREATE_TOPIC, create_topic_payload("t")))[12] == C.TOPIC_RESPONSE

    def crash(self: segments.TopicLog, payloads: list[segments.Buffer]) -> None:
        raise ValueError("a bug in append")

    monkeypatch.setattr(segments.TopicLog, "append", crash)
    await conn.send(ingest(1))
    assert await conn.expect_closed() == b""  # no Ack, no frame: closed as on a write failure
    text = "I/O error: the storage writer failed: ValueError: a bug in append"
    other = await RawConn.open(server.port)
    assert await other.ask(C.CREATE_TOPIC, create_topic_payload("u")) == error_reply(text)
    topics = await other.ask(C.LIST_TOPICS)
    assert b'"name":"t"' in topics
    assert b'"name":"u"' not in topics
    await other.send(ingest(2))
    assert await other.expect_closed() == b""  # later writes fail at once
    await conn.close()
    await other.close()
    with pytest.raises(OSError, match="ValueError: a bug in append"):
        await asyncio.wait_for(server.stop(), 2)
    assert not server.running
    crashes = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert len(crashes) == 1
    assert crashes[0].exc_info is not None
    assert isinstance(crashes[0].exc_info[1], ValueError)


def test_server_thread_stop_raises_when_the_thread_does_not_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    original = LanceServer.stop

    async def slow_stop(self: LanceServer) -> None:
        await asyncio.to_thread(release.wait, 10)
        await original(self)

    monkeypatch.setattr(LanceServer, "stop", slow_stop)
    thread = ServerThread(tmp_path, port=0).start()
    with pytest.raises(TimeoutError, match=r"did not stop within 0\.1 s"):
        thread.stop(timeout=0.1)
    release.set()
    thread.stop()
    assert not thread.server.running


def test_server_thread_stop_raises_what_the_server_stop_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = LanceServer.stop

    async def failing_stop(self: LanceServer) -> None:
        await original(self)
        raise OSError("segments not closed")

    monkeypatch.setattr(LanceServer, "stop", failing_stop)
    thread = ServerThread(tmp_path, port=0).start()
    with pytest.raises(OSError, match="segments not closed"):
        thread.stop()
    thread.stop()  # raised once; the thread has ended


async def test_a_fetch_read_failure_answers_io_error_and_keeps_the_connection(
    server: LanceServer, conn: RawConn, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await conn.ask(C.CREATE_TOPIC, create_topic_payload("t")))[12] == C.TOPIC_RESPONSE
    await conn.send(ingest(1))
    assert await conn.read_frame() == build_ack_frame(1)

    def eio(self: segments.TopicSnapshot, offset: int, size: int) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(segments.TopicSnapshot, "read", eio)
    assert await conn.ask(C.FETCH, fetch_payload(1, 0, 100)) == error_reply(
        "I/O error: Input/output error (os error 5)"
    )
    await conn.send(KEEPALIVE_FRAME)
    assert await conn.read_frame() == KEEPALIVE_FRAME


async def test_an_unexpected_command_failure_is_logged_and_aborts_the_connection(
    server: LanceServer,
    conn: RawConn,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert (await conn.ask(C.CREATE_TOPIC, create_topic_payload("t")))[12] == C.TOPIC_RESPONSE
    await conn.send(ingest(1))
    assert await conn.read_frame() == build_ack_frame(1)

    def bug(self: segments.TopicSnapshot, offset: int, size: int) -> bytes:
        raise ValueError("a bug in read")

    monkeypatch.setattr(segments.TopicSnapshot, "read", bug)
    await conn.send(build_control_frame(C.FETCH, fetch_payload(1, 0, 100)))
    with contextlib.suppress(ConnectionResetError):
        assert await conn.expect_closed() == b""
    gc.collect()  # an un-retrieved task exception would be reported now
    await asyncio.sleep(0)
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], ValueError)


async def test_the_retention_loop_survives_an_unexpected_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    passes: list[int] = []

    def flaky(targets: object, now_ns: int) -> int:
        passes.append(now_ns)
        if len(passes) == 1:
            raise ValueError("a bug in retention")
        return 0

    monkeypatch.setattr(app_module, "apply_retention", flaky)
    async with LanceServer(tmp_path, port=0, retention_interval_secs=0.02) as server:
        conn = await RawConn.open(server.port)
        payload = create_topic_with_retention_payload("t", max_age_secs=60, max_bytes=1000)
        assert (await conn.ask(C.CREATE_TOPIC_WITH_RETENTION, payload))[12] == C.TOPIC_RESPONSE
        await conn.close()
        async with asyncio.timeout(2):
            while len(passes) < 3:
                await asyncio.sleep(0.01)
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], ValueError)


@pytest.mark.parametrize("failing", ["rename", "rmtree"])
async def test_a_failed_delete_leaves_memory_as_the_disk_is_after_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    denied = OSError(errno.EACCES, "Permission denied")
    topic_dir = tmp_path / "segments" / "t"
    real_rename, real_rmtree = os.rename, shutil.rmtree

    def rename(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        if failing == "rename" and Path(source) == topic_dir:
            raise denied
        real_rename(source, target)

    def rmtree(path: str | os.PathLike[str], *args: object, **kwargs: object) -> None:
        if failing == "rmtree":
            raise denied
        real_rmtree(path)

    async with LanceServer(tmp_path, port=0) as server:
        conn = await RawConn.open(server.port)
        assert (await conn.ask(C.CREATE_TOPIC, create_topic_payload("t")))[12] == C.TOPIC_RESPONSE
        await conn.send(ingest(1))
        assert await conn.read_frame() == build_ack_frame(1)
        monkeypatch.setattr(os, "rename", rename)
        monkeypatch.setattr(shutil, "rmtree", rmtree)
        reply = await conn.ask(C.DELETE_TOPIC, struct.pack("<I", 1))
        assert reply == error_reply("I/O error: Permission denied (os error 13)")
        exists = (await conn.ask(C.GET_TOPIC, struct.pack("<I", 1)))[12] == C.TOPIC_RESPONSE
        assert exists == (failing == "rename")  # a failed rename changed nothing
        if exists:
            fetched = await conn.ask(C.FETCH, fetch_payload(1, 0, 100))
            assert fetched[HEADER_SIZE + 16 :] == RECORD
        await conn.close()
        monkeypatch.undo()
        await server.restart()
        conn = await RawConn.open(server.port)
        after = (await conn.ask(C.GET_TOPIC, struct.pack("<I", 1)))[12] == C.TOPIC_RESPONSE
        assert after == exists
        topics = await conn.ask(C.LIST_TOPICS)
        assert (b'"name":"t"' in topics) == exists
        await conn.close()


async def test_a_failed_set_retention_leaves_memory_as_the_disk_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with LanceServer(tmp_path, port=0, segment_max_bytes=8) as server:
        conn = await RawConn.open(server.port)
        assert (await conn.ask(C.CREATE_TOPIC, create_topic_payload("t")))[12] == C.TOPIC_RESPONSE
        for batch_id in (1, 2, 3):
            await conn.send(ingest(batch_id))
            assert await conn.read_frame() == build_ack_frame(batch_id)

        def denied(self: TopicRegistry, topic: object) -> None:
            raise OSError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(TopicRegistry, "write_metadata", denied)
        reply = await conn.ask(C.SET_RETENTION, set_retention_payload(1, 0, 0))
        assert reply == error_reply("I/O error: Permission denied (os error 13)")
        assert await server.run_retention() == 0  # the refused limits are not in force
        fetched = await conn.ask(C.FETCH, fetch_payload(1, 0, 100))
        assert fetched[HEADER_SIZE + 16 :] == RECORD * 3
        await conn.close()
