"""Crash recovery never cuts below an acknowledged byte, whatever bytes clients sent (issue 9.2).

A crash is simulated by copying the data directory while the server runs and every Ack is in:
that is exactly what a SIGKILL leaves (the page cache survives), without a subprocess.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lnc_client.protocol.frame import build_ack_frame, build_ingest_frame
from lnc_client.protocol.records import encode_values
from lnc_client.server import LanceServer
from lnc_client.server.storage.segments import TopicLog, mark_path, read_mark

from .conftest import RawConn
from .test_durability import create_topic, read_all

NOT_TLV = b"\x01\xff\xff\xff\x7f not a TLV chain"


def _active(directory: Path) -> Path:
    (active,) = (p for p in directory.glob("*.lnc") if "-" not in p.name)
    return active


def test_non_tlv_payload_then_crash_keeps_every_later_batch(tmp_path: Path) -> None:
    log = TopicLog(tmp_path, segment_max_bytes=1 << 20)
    good = [encode_values([b"x" * 50]) for _ in range(10)]
    log.append([good[0], NOT_TLV, *good[1:]])
    log.sync()
    acked = log.snapshot.total
    # crash: nothing closed; recover the directory as the next start does
    recovered = TopicLog.recover(tmp_path, 1 << 20)
    assert recovered.snapshot.total == acked
    assert recovered.snapshot.read(0, acked) == b"".join([good[0], NOT_TLV, *good[1:]])
    assert not list(tmp_path.glob("*.durable"))  # cleaned once the segment is closed


def test_unsynced_tail_is_cut_back_to_the_durable_size(tmp_path: Path) -> None:
    log = TopicLog(tmp_path, segment_max_bytes=1 << 20)
    log.append([NOT_TLV])
    log.sync()
    log.append([encode_values([b"never acked"])])  # written, not synced, so never acked
    active = _active(tmp_path)
    assert read_mark(mark_path(active)) == len(NOT_TLV)
    recovered = TopicLog.recover(tmp_path, 1 << 20)
    assert recovered.snapshot.total == len(NOT_TLV)


def test_torn_durable_slot_falls_back_to_the_other_slot(tmp_path: Path) -> None:
    log = TopicLog(tmp_path, segment_max_bytes=1 << 20)
    log.append([NOT_TLV])
    log.sync()
    log.append([b"second"])
    log.sync()
    mark = mark_path(_active(tmp_path))
    raw = bytearray(mark.read_bytes())
    raw[0] ^= 0xFF  # slot 0 holds the newest size (seq 2): tear it
    mark.write_bytes(bytes(raw))
    assert read_mark(mark) == len(NOT_TLV)


def test_segment_without_durable_file_uses_the_tlv_scan(tmp_path: Path) -> None:
    records = encode_values([b"a", b"b"])
    (tmp_path / "0_1.lnc").write_bytes(records + b"\x01\x05\x00")  # torn header, no .durable
    recovered = TopicLog.recover(tmp_path, 1 << 20)
    assert recovered.snapshot.total == len(records)


def test_rotation_keeps_no_durable_file_for_closed_segments(tmp_path: Path) -> None:
    log = TopicLog(tmp_path, segment_max_bytes=64)
    for _ in range(5):
        log.append([NOT_TLV * 3])
        log.sync()
    assert len(list(tmp_path.glob("*.durable"))) == 1  # only the active segment's
    total = log.snapshot.total
    assert TopicLog.recover(tmp_path, 64).snapshot.total == total


async def test_server_crash_image_keeps_acked_batches_after_a_non_tlv_ingest(
    tmp_path: Path,
) -> None:
    crash = tmp_path / "crash"
    async with LanceServer(tmp_path / "data", port=0) as server:
        topic = await create_topic(server.port, "mixed")
        bad = await RawConn.open(server.port)
        await bad.send(build_ingest_frame(NOT_TLV, batch_id=1, record_count=1, topic_id=topic))
        assert await bad.read_frame() == build_ack_frame(1)
        good = await RawConn.open(server.port)
        payloads = [encode_values([os.urandom(30)]) for _ in range(50)]
        frames = [
            build_ingest_frame(p, batch_id=i, record_count=1, topic_id=topic)
            for i, p in enumerate(payloads, 1)
        ]
        await good.send(b"".join(frames))
        assert await good.read_frames(50) == [build_ack_frame(i) for i in range(1, 51)]
        shutil.copytree(server.data_dir, crash)  # what SIGKILL leaves behind
        await bad.close()
        await good.close()
    async with LanceServer(crash, port=0) as restarted:
        reader = await RawConn.open(restarted.port)
        stored = await read_all(reader, topic)
        await reader.close()
    assert stored == NOT_TLV + b"".join(payloads)


def test_a_rotated_segment_whose_rename_was_lost_keeps_its_bytes(tmp_path: Path) -> None:
    """Rotation records the segment's final size before renaming it: a crash that undoes the
    rename (before the directory sync) still recovers the whole segment."""
    log = TopicLog(tmp_path, segment_max_bytes=64)
    log.append([NOT_TLV, NOT_TLV * 4])  # the second payload reaches the limit: rotation
    (closed,) = tmp_path.glob("*-*.lnc")
    closed.rename(tmp_path / (closed.name.split("-")[0] + ".lnc"))  # the rename is lost
    assert TopicLog.recover(tmp_path, 64).snapshot.total == len(NOT_TLV) * 5
