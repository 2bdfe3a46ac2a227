"""`lnc` offline commands on a data directory written by the embedded server."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from lnc_client.server import ServerThread

from .conftest import Lnc


@pytest.fixture
def data_dir(tmp_path: Path, lnc: Lnc) -> Path:
    """A data directory with topics `logs` (id 1, three records) and `empty` (id 2); no server."""
    directory = tmp_path / "offline"
    with ServerThread(directory, port=0) as server:
        address = ["-s", server.address]
        lnc("create-topic", *address, "-n", "logs")
        lnc("create-topic", *address, "-n", "empty")
        lnc("produce", *address, "-t", "logs", "one", "two", "three")
    return directory


def _segment(data_dir: Path, topic: str) -> Path:
    (segment,) = sorted((data_dir / "segments" / topic).glob("*.lnc"))
    return segment


def test_topics_lists_ids_names_status_and_sizes(lnc: Lnc, data_dir: Path) -> None:
    (data_dir / "segments" / "stray").mkdir()
    out = lnc("topics", data_dir).out.splitlines()
    assert out[0] == f"Topics in: {data_dir / 'segments'}"
    assert out[1].split() == ["ID", "Name", "Status", "Size"]
    rows = {line.split()[1]: line.split() for line in out[3:]}
    assert rows["logs"][:3] == ["1", "logs", "active"]
    assert rows["empty"][0] == "2"
    assert rows["stray"][2] == "orphaned"
    assert lnc("topics", data_dir / "none").code == 1


def test_verify_scan_dump_and_repair_a_torn_segment(lnc: Lnc, data_dir: Path) -> None:
    ok = lnc("verify-data", "-p", data_dir, "-t", "logs")
    assert ok.code == 0
    assert "  Records:   3\n" in ok.out
    assert lnc("verify-data", "-p", data_dir, "-t", "1").out == ok.out
    segment = _segment(data_dir, "logs")
    dump = lnc("dump", segment, "-l", "2").out
    assert dump.endswith("  [0] offset=0, size=8, payload=3\n  [1] offset=8, size=8, payload=3\n"
                         "Displayed 2 records\n")  # fmt: skip
    with segment.open("ab") as handle:
        handle.write(b"\x01\xff\x00\x00\x00torn")
    bad = lnc("verify-data", "-p", data_dir, "-t", "logs")
    assert bad.code == 1
    assert "✗" in bad.out
    assert bad.err == "Error: 1 segment(s) failed verification\n"
    assert lnc("verify-data", "-p", data_dir, "-t", "logs", "--fail-fast").code == 1
    scan = lnc("scan", segment).out
    assert "  Valid bytes: 26\n  Valid records: 3\n  Truncated bytes: 9\n" in scan
    assert "Corruption detected at offset: 26" in scan
    assert f"  {segment}" in lnc("find-recovery", data_dir).out
    repaired = lnc("repair", segment).out
    assert "  Final size: 26 bytes\n  Records preserved: 3\n  Truncated: 9 bytes\n" in repaired
    assert segment.stat().st_size == 26
    assert lnc("verify-data", "-p", data_dir, "-t", "logs").code == 0
    assert lnc("verify-data", "-p", data_dir, "-t", "nope").code == 1


def test_export_then_import_serves_the_same_records(
    lnc: Lnc, data_dir: Path, tmp_path: Path
) -> None:
    backup = tmp_path / "logs.bin"
    exported = lnc("export-topic", "-p", data_dir, "-t", "logs", "-o", backup, "--with-metadata")
    assert exported.code == 0
    assert "✓ Export completed successfully" in exported.out
    (length,) = struct.unpack_from("<I", backup.read_bytes())
    header = json.loads(backup.read_bytes()[4 : 4 + length])
    assert header["version"] == 1
    assert header["topic_id"] == 1
    assert header["metadata"]["name"] == "logs"
    assert backup.read_bytes().endswith(b"\x00" * 8)

    target = tmp_path / "restored"
    imported = lnc("import-topic", "-p", target, "-n", "copy", "-i", backup)
    assert "  New Topic ID: 1\n  Segments:     1\n  Total:        26 bytes\n" in imported.out
    assert lnc("import-topic", "-p", target, "-n", "copy", "-i", backup).code == 1
    assert lnc("import-topic", "-p", target, "-n", "x", "-i", tmp_path / "none").code == 1
    backup.write_bytes(backup.read_bytes()[:-12])
    assert lnc("import-topic", "-p", target, "-n", "cut", "-i", backup).code == 1

    with ServerThread(target, port=0) as server:
        out = lnc("consume", "-s", server.address, "-t", "copy", "--format", "text").out
    assert out == "one\ntwo\nthree\n"


def test_clean_removes_orphans_and_tombstones_but_not_topics(lnc: Lnc, data_dir: Path) -> None:
    root = data_dir / "segments"
    (root / "stray").mkdir()
    (root / "stray" / "0_1.lnc").write_bytes(b"abc")
    (root / ".deleted-7-1").mkdir()
    (root / "0").mkdir()  # the legacy topic-0 log: kept
    dry = lnc("clean", data_dir, "--dry-run").out
    assert "Found 2 orphaned topic directories:\n" in dry
    assert "  stray (3 bytes)\n" in dry
    assert "Dry run - no files were deleted." in dry
    assert (root / "stray").exists()
    done = lnc("clean", data_dir).out
    assert "Cleaned 2 directories, freed 3 bytes." in done
    assert sorted(p.name for p in root.iterdir()) == ["0", "empty", "logs"]
    assert lnc("clean", data_dir).out.startswith("No orphaned topic directories found")
    assert lnc("clean", data_dir / "none").out.startswith("Segments directory does not exist")


def test_find_recovery_on_a_clean_directory_and_index_commands(lnc: Lnc, data_dir: Path) -> None:
    assert lnc("find-recovery", data_dir).out == f"No segments need recovery in: {data_dir}\n"
    for command in ("rebuild-index", "inspect-index"):
        said = lnc(command, data_dir / "x.idx")
        assert said.code == 1
        assert said.err.startswith("Error: the embedded server keeps no index files")
        assert said.err.count("\n") == 1
