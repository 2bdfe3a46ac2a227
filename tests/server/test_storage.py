"""Fetch over stored bytes, the on-disk layout, rotation, recovery, restart and retention."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import struct
import time
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
    ControlCommand,
    build_ack_frame,
    build_control_frame,
    build_ingest_frame,
)
from lnc_client.protocol.records import TlvRecord, decode_stream, encode_records, encode_values
from lnc_client.server import LanceServer
from lnc_client.server.storage.segments import TopicLog, scan_tlv

from .conftest import RawConn

C = ControlCommand
ACTIVE = re.compile(r"\d+_\d{19}\.lnc")
CLOSED = re.compile(r"\d+_\d{19}-\d{19}\.lnc")


async def produce(conn: RawConn, topic: int, payloads: list[bytes], first_id: int = 1) -> None:
    frames = [
        build_ingest_frame(p, batch_id=first_id + i, record_count=1, topic_id=topic)
        for i, p in enumerate(payloads)
    ]
    await conn.send(b"".join(frames))
    acks = await conn.read_frames(len(frames))
    assert acks == [build_ack_frame(first_id + i) for i in range(len(frames))]


async def fetch(conn: RawConn, topic: int, offset: int, max_bytes: int) -> tuple[int, int, bytes]:
    frame = await conn.ask(C.FETCH, fetch_payload(topic, offset, max_bytes))
    assert frame[12] == C.FETCH_RESPONSE, frame
    next_offset, length, count = struct.unpack_from("<QII", frame, HEADER_SIZE)
    data = frame[HEADER_SIZE + 16 :]
    assert length == len(data)
    assert count == (1 if data else 0)
    return next_offset, count, data


def segment_files(data_dir: Path, topic: str) -> list[str]:
    return sorted(p.name for p in (data_dir / "segments" / topic).glob("*.lnc"))


async def test_fetch_windows_are_raw_byte_cuts(tmp_path: Path) -> None:
    async with LanceServer(tmp_path, port=0, segment_max_bytes=100) as server:
        conn = await RawConn.open(server.port)
        await conn.ask(C.CREATE_TOPIC, create_topic_payload("t"))
        payloads = [encode_values([bytes([i]) * 30]) for i in range(10)]  # 35 bytes each
        await produce(conn, 1, payloads)
        stored = b"".join(payloads)
        # windows cut at max_bytes, inside records, across segment boundaries
        offset, got = 0, b""
        while offset < len(stored):
            offset, _, data = await fetch(conn, 1, offset, 33)
            assert len(data) == min(33, len(stored) - len(got))
            got += data
        assert got == stored
        assert await fetch(conn, 1, 7, 1000) == (len(stored), 1, stored[7:])
        assert await fetch(conn, 1, len(stored), 10) == (len(stored), 0, b"")
        assert await fetch(conn, 1, 3, 0) == (3, 0, b"")
        tail = await conn.ask(C.FETCH, fetch_payload(1, 2**64 - 1, 10))
        assert tail == build_control_frame(C.FETCH_RESPONSE, struct.pack("<QII", len(stored), 0, 0))
        past = await conn.ask(C.FETCH, fetch_payload(1, len(stored) + 1, 10))
        assert past == build_control_frame(C.CATCHING_UP, struct.pack("<Q", len(stored)))
        await conn.close()
    # rotation: closed at >= 100 bytes (35*3 = 105), real naming, one segment per 3 batches
    names = segment_files(tmp_path, "t")
    assert len(names) == 4
    assert all(CLOSED.fullmatch(n) for n in names), names
    assert [int(n.split("_")[0]) for n in names] == [0, 3, 6, 9]
    sizes = [(tmp_path / "segments" / "t" / n).stat().st_size for n in names]
    assert sizes == [105, 105, 105, 35]


async def test_layout_metadata_and_restart(tmp_path: Path) -> None:
    async with LanceServer(tmp_path, port=0) as server:
        conn = await RawConn.open(server.port)
        await conn.ask(C.CREATE_TOPIC, create_topic_payload("a"))
        await conn.ask(
            C.CREATE_TOPIC_WITH_RETENTION, create_topic_with_retention_payload("b", 5, 6)
        )
        await produce(conn, 1, [b"\x01\x02\x00\x00\x00hi"])
        active = segment_files(tmp_path, "a")
        assert len(active) == 1
        assert ACTIVE.fullmatch(active[0])
        await conn.close()
        port = server.port
        meta = json.loads((tmp_path / "segments" / "b" / "metadata.json").read_text())
        text = (tmp_path / "segments" / "b" / "metadata.json").read_text()
        expected = (
            '{\n  "id": 2,\n  "name": "b",\n  "created_at": CREATED,\n  "topic_epoch": 1,\n'
            '  "auth": null,\n  "retention": {\n    "max_bytes": 6,\n    "max_age_secs": 5\n'
            "  }\n}"
        )
        assert text == expected.replace("CREATED", str(meta["created_at"]))
        # restart on the same port and data dir: data intact, ids continue, segment closed
        await server.restart()
        assert server.port == port
        conn = await RawConn.open(port)
        assert (await fetch(conn, 1, 0, 100))[2] == b"\x01\x02\x00\x00\x00hi"
        created = await conn.ask(C.CREATE_TOPIC, create_topic_payload("c"))
        assert json.loads(created[HEADER_SIZE:])["id"] == 3
        await produce(conn, 1, [b"\x01\x01\x00\x00\x00!"], first_id=2)
        assert (await fetch(conn, 1, 0, 100))[2] == b"\x01\x02\x00\x00\x00hi\x01\x01\x00\x00\x00!"
        await conn.close()
    names = segment_files(tmp_path, "a")
    assert [int(n.split("_")[0]) for n in names] == [0, 1]


def test_recovery_scan_keeps_exactly_the_whole_records_the_decoder_reads(tmp_path: Path) -> None:
    records = [TlvRecord.raw(b"abc"), TlvRecord.null(), TlvRecord(0xFF, b"zz", 7)]
    stream = encode_records(records) + TlvRecord.raw(b"x" * 300).encode()
    segment = tmp_path / "0_1.lnc"
    for cut in range(len(stream) + 1):
        segment.write_bytes(stream[:cut])
        assert scan_tlv(segment) == decode_stream(stream[:cut])[1], cut


async def test_recovery_cuts_torn_tail_and_drops_empty_files(tmp_path: Path) -> None:
    topic_dir = tmp_path / "segments" / "t"
    topic_dir.mkdir(parents=True)
    (topic_dir / "metadata.json").write_text(
        json.dumps(
            {
                "id": 4,
                "name": "t",
                "created_at": 1,
                "topic_epoch": 1,
                "auth": None,
                "retention": None,
            }
        )
    )
    whole = encode_values([b"abc", b"defg"]) + b"\xff\x07\x00\x02\x00\x00\x00zz"
    start = time.time_ns()
    (topic_dir / f"0_{start}.lnc").write_bytes(whole + b"\x01\x09\x00\x00\x00abc")  # torn
    (topic_dir / f"1_{start + 1}.lnc").write_bytes(b"")
    async with LanceServer(tmp_path, port=0) as server:
        conn = await RawConn.open(server.port)
        assert (await fetch(conn, 4, 0, 1000))[2] == whole
        created = await conn.ask(C.CREATE_TOPIC, create_topic_payload("u"))
        assert json.loads(created[HEADER_SIZE:])["id"] == 5
        await produce(conn, 4, [b"\x01\x00\x00\x00\x00"])
        await conn.close()
    names = segment_files(tmp_path, "t")
    assert len(names) == 2
    assert names[0].startswith(f"0_{start}-")
    assert names[1].startswith("1_")  # the next index after the largest one left


async def test_retention_by_bytes_and_age(tmp_path: Path) -> None:
    async with LanceServer(tmp_path, port=0, segment_max_bytes=10) as server:
        conn = await RawConn.open(server.port)
        await conn.ask(C.CREATE_TOPIC, create_topic_payload("r"))
        payloads = [encode_values([bytes([65 + i]) * 5]) for i in range(5)]  # 10 bytes each
        await produce(conn, 1, payloads)
        assert len(segment_files(tmp_path, "r")) == 5  # every one rotated (closed)
        assert await server.run_retention() == 0  # no retention set
        await conn.ask(C.SET_RETENTION, set_retention_payload(1, 3600, 25))
        assert await server.run_retention() == 3  # oldest first until total <= 25
        # offsets shift down: the concatenation starts at the first remaining file
        assert await fetch(conn, 1, 0, 100) == (20, 1, b"".join(payloads[3:]))
        await produce(conn, 1, [encode_values([b"zzzzz"])], first_id=10)
        await conn.ask(C.SET_RETENTION, set_retention_payload(1, 0, 2**40))
        assert await server.run_retention() == 3  # max_age 0 expires every closed segment
        assert await fetch(conn, 1, 0, 100) == (0, 0, b"")
        await produce(conn, 1, [b"\x01\x01\x00\x00\x00a"], first_id=20)
        assert await server.run_retention() == 0  # the active segment is never deleted
        await conn.close()


async def test_retention_runs_at_startup(tmp_path: Path) -> None:
    async with LanceServer(tmp_path, port=0, segment_max_bytes=5) as server:
        conn = await RawConn.open(server.port)
        await conn.ask(
            C.CREATE_TOPIC_WITH_RETENTION, create_topic_with_retention_payload("x", 0, 0)
        )
        await produce(conn, 1, [b"\x01\x00\x00\x00\x00"] * 3)
        await conn.close()
    assert len(segment_files(tmp_path, "x")) == 3
    async with LanceServer(tmp_path, port=0, retention_interval_secs=3600):
        deadline = time.monotonic() + 5
        while segment_files(tmp_path, "x") and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    assert segment_files(tmp_path, "x") == []


async def test_delete_topic_removes_directory(tmp_path: Path) -> None:
    async with LanceServer(tmp_path, port=0) as server:
        conn = await RawConn.open(server.port)
        await conn.ask(C.CREATE_TOPIC, create_topic_payload("d"))
        await produce(conn, 1, [b"\x01\x00\x00\x00\x00"])
        assert await conn.ask(C.DELETE_TOPIC, struct.pack("<I", 1)) == build_control_frame(
            C.TOPIC_RESPONSE, b'{"deleted":1}'
        )
        assert not (tmp_path / "segments" / "d").exists()
        await conn.send(
            build_ingest_frame(b"\x01\x00\x00\x00\x00", batch_id=2, record_count=1, topic_id=1)
        )
        assert await conn.read_frame() == build_control_frame(C.ERROR_RESPONSE, b"Unknown topic")
        await conn.close()
    assert os.listdir(tmp_path / "segments") == []


def test_a_failed_truncate_keeps_durable_bytes_readable_and_leaks_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    baseline = open_descriptors()
    log = TopicLog(tmp_path / "t", 1 << 20)
    log.append([b"aaaa"])
    log.sync()
    log.append([b"bbbb"])  # not durable: a failed sync would abandon it

    def fail(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "ftruncate", fail)
    with pytest.raises(OSError, match="Input/output error"):
        log.abandon_unsynced()
    monkeypatch.undo()
    assert log.snapshot.read(0, 100) == b"aaaa"
    log.append([b"cccc"])  # goes to a new segment, after the abandoned one
    log.sync()
    assert log.snapshot.read(0, 100) == b"aaaacccc"
    assert log.snapshot.read(4, 100) == b"cccc"
    log.close()
    log.retire()
    assert open_descriptors() == baseline


async def setup_topics(data_dir: Path, names: list[str]) -> None:
    """Create topics 1.. with these names, each holding one record of its name."""
    async with LanceServer(data_dir, port=0) as server:
        conn = await RawConn.open(server.port)
        for topic, name in enumerate(names, 1):
            await conn.ask(C.CREATE_TOPIC, create_topic_payload(name))
            await produce(conn, topic, [encode_values([name.encode()])])
        await conn.close()


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"id": "x"}', b'{"name": "n"}'])
async def test_a_bad_metadata_json_skips_that_topic_and_the_server_starts(
    tmp_path: Path, content: bytes
) -> None:
    """As real lance does (it warns "Failed to load topic metadata" and goes on)."""
    await setup_topics(tmp_path, ["good", "bad"])
    (tmp_path / "segments" / "bad" / "metadata.json").write_bytes(content)
    async with LanceServer(tmp_path, port=0) as server:
        conn = await RawConn.open(server.port)
        listing = await conn.ask(C.LIST_TOPICS)
        assert [t["name"] for t in json.loads(listing[HEADER_SIZE:])["topics"]] == ["good"]
        assert (await fetch(conn, 1, 0, 100))[2] == encode_values([b"good"])
        await conn.close()


async def test_a_deleted_topic_never_leaves_a_loadable_metadata_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real lance loads any directory with a metadata.json, a `.deleted-*` tombstone too: the
    file is renamed away before the directory, so a tombstone left behind is no topic to it."""
    await setup_topics(tmp_path, ["keep", "gone"])

    def refuse(path: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EBUSY, "busy")

    async with LanceServer(tmp_path, port=0) as server:
        monkeypatch.setattr("shutil.rmtree", refuse)
        conn = await RawConn.open(server.port)
        await conn.ask(C.DELETE_TOPIC, struct.pack("<I", 2))
        await conn.close()
        monkeypatch.undo()
    (tombstone,) = (p for p in (tmp_path / "segments").iterdir() if p.name.startswith("."))
    assert sorted(p.name for p in tombstone.iterdir() if not p.name.endswith(".lnc")) == [
        "metadata.json.deleted"
    ]
    # a delete cut short before its directory rename: startup finishes it
    keep = tmp_path / "segments" / "keep"
    (keep / "metadata.json").rename(keep / "metadata.json.deleted")
    async with LanceServer(tmp_path, port=0):
        pass
    assert os.listdir(tmp_path / "segments") == []


@pytest.mark.parametrize("failing", ["fsync", "rename"])
async def test_a_delete_that_fails_is_undone_durably_and_keeps_every_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """A failed step after metadata.json was hidden puts it back and syncs the directory: a
    hidden metadata.json makes startup remove the directory, acknowledged records included."""
    await setup_topics(tmp_path, ["t"])
    topic_dir = tmp_path / "segments" / "t"
    synced: list[tuple[Path, bool]] = []  # (directory, metadata.json visible when synced)
    real_rename, topics_module = os.rename, "lnc_client.server.storage.topics"

    def fsync_dir(path: Path) -> None:
        if failing == "fsync" and (path / "metadata.json.deleted").exists():
            raise OSError(errno.EIO, "I/O error")
        synced.append((Path(path), (Path(path) / "metadata.json").exists()))

    def rename(src: object, dst: object) -> None:
        if failing == "rename" and Path(str(src)) == topic_dir:
            raise OSError(errno.EBUSY, "busy")
        real_rename(src, dst)  # type: ignore[arg-type]  # the os.rename signature

    async with LanceServer(tmp_path, port=0) as server:
        monkeypatch.setattr(f"{topics_module}.fsync_directory", fsync_dir)
        monkeypatch.setattr(f"{topics_module}.os.rename", rename)
        conn = await RawConn.open(server.port)
        reply = await conn.ask(C.DELETE_TOPIC, struct.pack("<I", 1))
        assert b"I/O error" in reply
        monkeypatch.undo()
        assert (topic_dir / "metadata.json").is_file()
        assert (topic_dir, True) in synced  # the undo is durable
        await produce(conn, 1, [encode_values([b"after"])])  # still a topic, still acked
        await conn.close()
    async with LanceServer(tmp_path, port=0) as server:
        conn = await RawConn.open(server.port)
        assert (await fetch(conn, 1, 0, 100))[2] == encode_values([b"t", b"after"])
        await conn.close()


async def test_an_unreadable_metadata_json_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Skipping it (as for bad JSON) could hand its id out again: a read error is not skipped."""
    await setup_topics(tmp_path, ["t"])
    real_read = Path.read_bytes

    def read_bytes(path: Path) -> bytes:
        if path.name == "metadata.json":
            raise OSError(errno.EIO, "Input/output error")
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(OSError, match="Input/output error"):
        async with LanceServer(tmp_path, port=0):
            pass


async def test_a_stray_lnc_file_is_read_where_real_lance_reads_it(tmp_path: Path) -> None:
    """Real lance reads every `.lnc` file, placed by the leading numbers of its name (0 when
    they do not parse): a stray file is read first, so offsets stay the same on both servers."""
    await setup_topics(tmp_path, ["t"])
    (tmp_path / "segments" / "t" / "zz-backup.lnc").write_bytes(encode_values([b"stray"]))
    async with LanceServer(tmp_path, port=0) as server:
        conn = await RawConn.open(server.port)
        assert (await fetch(conn, 1, 0, 100))[2] == encode_values([b"stray", b"t"])
        await produce(conn, 1, [encode_values([b"more"])])
        assert (await fetch(conn, 1, 0, 100))[2] == encode_values([b"stray", b"t", b"more"])
        await conn.close()
    assert (tmp_path / "segments" / "t" / "zz-backup.lnc").read_bytes() == encode_values([b"stray"])
