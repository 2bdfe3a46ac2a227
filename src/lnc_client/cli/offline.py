"""`lnc` offline commands: work on a data directory or a segment file, without a server.

Layout (the real server's, which `lnc serve` keeps, PROTOCOL.md §7): `DATA/segments/<topic
name>/` holds `metadata.json` and the segment files `<index>_<start_ns>[-<end_ns>].lnc`, whose
bytes are the ingest payloads back to back. Segment names and metadata come from
`server.storage` (`parse_segment_name`, `metadata_json`); records are read with
`protocol.records.decode_stream`, the same TLV rule crash recovery applies (§2.9).

Commands, named and flagged as in the Rust `lnc`: `topics`, `verify-data`, `export-topic`,
`import-topic` (the Rust export file format: u32 LE header length, JSON header, then each
segment as u64 LE length + bytes, then a u64 0), `scan`, `repair`, `dump`, `clean`,
`find-recovery`; `rebuild-index` and `inspect-index` say in one line that there are no index
files here. Where the Rust CLI looks for `DATA/topic_<id>/*.seg` (a layout its server does not
write), these commands use the real one, and take a topic by id or by name. Commands that write
(`repair`, `clean`, `import-topic`) must run while no server uses the directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final, TypeAlias

from lnc_client._fs import fsync_directory
from lnc_client.cli.common import CliError, format_bytes, topic_arg
from lnc_client.errors import validate_topic_name
from lnc_client.protocol.records import TlvRecord, decode_stream
from lnc_client.server.storage.segments import parse_segment_name
from lnc_client.server.storage.topics import (
    LEGACY_TOPIC,
    METADATA,
    SEGMENTS_DIR,
    TOMBSTONE_PREFIX,
    metadata_json,
)

if TYPE_CHECKING:
    from lnc_client.cli.common import Subparsers

__all__ = ["add_offline_parsers"]

_U32: Final = struct.Struct("<I")
_U64: Final = struct.Struct("<Q")
_EXPORT_VERSION: Final = 1
_DATA_DIR: Final = "path to data directory"
_SEGMENT: Final = "path to segment file"
_INDEX_FILE: Final = "path to index file (.idx or .tidx)"
_Handler: TypeAlias = Callable[[argparse.Namespace], int]
_NO_INDEX: Final = (
    "the embedded server keeps no index files (.idx/.tidx): "
    "fetches find offsets from segment sizes, so there is nothing to {what}"
)


def add_offline_parsers(subparsers: Subparsers) -> None:
    """Add the offline (data directory and segment file) commands to the `lnc` parser."""
    _path_command(subparsers, "topics", "List all topics with their status", _topics, _DATA_DIR)

    parser = _command(subparsers, "verify-data", "Verify data integrity for a topic", _verify)
    _topic_in_data_dir(parser)
    parser.add_argument("--fail-fast", action="store_true", help="stop on first error")

    parser = _command(subparsers, "export-topic", "Export topic data to a file for backup", _export)
    _topic_in_data_dir(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, help="output file path")
    parser.add_argument("--with-metadata", action="store_true", help="include metadata")

    parser = _command(subparsers, "import-topic", "Import topic data from a backup file", _import)
    parser.add_argument("-p", "--path", type=Path, required=True, help=_DATA_DIR)
    parser.add_argument("-n", "--name", required=True, help="name for the imported topic")
    parser.add_argument("-i", "--input", type=Path, required=True, help="input file path")

    _path_command(subparsers, "scan", "Scan a segment file for valid records", _scan, _SEGMENT)
    summary = "Truncate a segment file after its last whole record"
    _path_command(subparsers, "repair", summary, _repair, _SEGMENT)

    summary = "Print the records of a segment file"
    parser = _path_command(subparsers, "dump", summary, _dump, _SEGMENT)
    parser.add_argument("-l", "--limit", type=int, default=10, help="records to show (10)")

    summary = "Remove orphaned/deleted topic directories"
    parser = _path_command(subparsers, "clean", summary, _clean, _DATA_DIR)
    parser.add_argument(
        "--dry-run", action="store_true", help="show what would be deleted without deleting"
    )

    summary = "List segments that need recovery"
    _path_command(subparsers, "find-recovery", summary, _find_recovery, _DATA_DIR)
    summary = "Rebuild a segment's index (none here)"
    _path_command(subparsers, "rebuild-index", summary, _no_index, _SEGMENT)
    summary = "Inspect an index file (none here)"
    _path_command(subparsers, "inspect-index", summary, _no_index, _INDEX_FILE)


def _command(
    subparsers: Subparsers, name: str, summary: str, handler: _Handler
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=summary, description=summary + ".")
    parser.set_defaults(handler=handler)
    return parser


def _path_command(
    subparsers: Subparsers, name: str, summary: str, handler: _Handler, path_help: str
) -> argparse.ArgumentParser:
    """A command whose first argument is a path (a data directory or a file)."""
    parser = _command(subparsers, name, summary, handler)
    parser.add_argument("path", type=Path, help=path_help)
    return parser


def _topic_in_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--path", type=Path, required=True, help=_DATA_DIR)
    parser.add_argument("-t", "--topic", type=topic_arg, required=True, help="topic id or name")


# --- reading the layout -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TopicDir:
    path: Path
    id: int | None
    name: str
    created_at: int

    @property
    def label(self) -> str:
        return str(self.id) if self.id is not None else self.path.name


def _segments_root(data_dir: Path) -> Path:
    root = data_dir / SEGMENTS_DIR
    if not root.is_dir():
        raise CliError(f"Segments directory does not exist: {root}")
    return root


def _read_topic_dir(path: Path) -> _TopicDir | None:
    """The topic in `path`, or None if it has no readable metadata.json."""
    try:
        raw = json.loads((path / METADATA).read_text())
        return _TopicDir(path, int(raw["id"]), str(raw["name"]), int(raw.get("created_at", 0)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _find_topic(data_dir: Path, topic: int | str) -> _TopicDir:
    for path in sorted(_segments_root(data_dir).iterdir()):
        found = _read_topic_dir(path) if path.is_dir() else None
        if found is not None and topic in (found.id, found.name):
            return found
    raise CliError(f"Topic {topic} not found in {data_dir / SEGMENTS_DIR}")


def _segment_files(directory: Path) -> list[Path]:
    """The segment files of a topic directory, in log order."""
    keyed = []
    for path in directory.iterdir():
        parsed = parse_segment_name(path.name)
        if parsed is not None and path.is_file():
            keyed.append(((parsed[0], parsed[1]), path))
    return [path for _, path in sorted(keyed)]


def _directory_size(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())


@dataclass(frozen=True, slots=True)
class _Scan:
    size: int
    valid_bytes: int
    records: list[TlvRecord]


def _scan_file(path: Path, max_records: int | None = None) -> _Scan:
    data = path.read_bytes()
    records, used = decode_stream(data, decompress=False, max_records=max_records)
    return _Scan(len(data), used, records)


# --- data directory commands ------------------------------------------------------------------


def _topics(args: argparse.Namespace) -> int:
    root = _segments_root(args.path)
    print(f"Topics in: {root}")
    print(f"{'ID':<6} {'Name':<30} {'Status':<12} {'Size':<15}")
    print("-" * 65)
    for path in sorted(entry for entry in root.iterdir() if entry.is_dir()):
        topic = _read_topic_dir(path)
        if topic is not None:
            label, name, status = topic.label, topic.name, "active"
        elif path.name.startswith(TOMBSTONE_PREFIX):
            label, name, status = path.name, path.name, "deleted"
        elif path.name == LEGACY_TOPIC:
            label, name, status = path.name, path.name, "legacy"
        else:
            label, name, status = path.name, path.name, "orphaned"
        size = _directory_size(path)
        if size > 1024 * 1024:
            size_text = f"{size / (1024 * 1024):.2f} MB"
        elif size > 1024:
            size_text = f"{size / 1024:.2f} KB"
        else:
            size_text = f"{size} B"
        print(f"{label:<6} {name:<30} {status:<12} {size_text:<15}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    topic = _find_topic(args.path, args.topic)
    print(f'Verifying topic {topic.label} at "{topic.path}"')
    segments = _segment_files(topic.path)
    verified = records = 0
    errors: list[str] = []
    for path in segments:
        scan = _scan_file(path)
        if scan.valid_bytes == scan.size:
            verified += 1
            records += len(scan.records)
            print(f'  ✓ "{path.name}": {len(scan.records)} records')
            continue
        message = (
            f'"{path.name}": torn record at byte {scan.valid_bytes} of {scan.size} '
            f"({scan.size - scan.valid_bytes} bytes after the last whole record)"
        )
        print(f"  ✗ {message}")
        errors.append(message)
        if args.fail_fast:
            raise CliError("Verification failed - stopping on first error")
    print("\nVerification Summary:")
    print(f"  Segments:  {verified}/{len(segments)} verified")
    print(f"  Records:   {records}")
    print(f"  Errors:    {len(errors)}")
    if errors:
        print(f"\n✗ Verification failed with {len(errors)} errors")
        raise CliError(f"{len(errors)} segment(s) failed verification")
    print("\n✓ All data verified successfully")
    return 0


def _export(args: argparse.Namespace) -> int:
    topic = _find_topic(args.path, args.topic)
    print(f'Exporting topic {topic.label} to "{args.output}"')
    header: dict[str, object] = {
        "version": _EXPORT_VERSION,
        "topic_id": topic.id,
        "exported_at": datetime.now(UTC).isoformat(),
        "with_metadata": args.with_metadata,
    }
    if args.with_metadata:
        header["metadata"] = json.loads((topic.path / METADATA).read_text())
    encoded = json.dumps(header, separators=(",", ":")).encode()
    total = count = 0
    with args.output.open("wb") as out:
        out.write(_U32.pack(len(encoded)) + encoded)
        for path in _segment_files(topic.path):
            data = path.read_bytes()
            out.write(_U64.pack(len(data)))
            out.write(data)
            total += len(data)
            count += 1
            print(f'  Exported "{path.name}" ({len(data)} bytes)')
        out.write(_U64.pack(0))
    print("\nExport Summary:")
    print(f"  Segments:  {count}")
    print(f"  Total:     {format_bytes(total)}")
    print("\n✓ Export completed successfully")
    return 0


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise CliError("the export file ends early (truncated?)")
    return data


def _import(args: argparse.Namespace) -> int:
    validate_topic_name(args.name)
    if not args.input.is_file():
        raise CliError(f'Input file not found: "{args.input}"')
    root = args.path / SEGMENTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    existing = [_read_topic_dir(path) for path in root.iterdir() if path.is_dir()]
    if any(topic is not None and topic.name == args.name for topic in existing):
        raise CliError(f"a topic named {args.name!r} exists already")
    target = root / args.name
    if target.exists():
        raise CliError(f"{target} exists already")
    new_id = max((topic.id or 0 for topic in existing if topic is not None), default=0) + 1
    print(f"Importing topic '{args.name}' from \"{args.input}\"")
    with args.input.open("rb") as stream:
        (length,) = _U32.unpack(_read_exact(stream, _U32.size))
        try:
            header = json.loads(_read_exact(stream, length))
        except ValueError as error:
            raise CliError(f"Invalid export header: {error}") from None
        for key in ("version", "topic_id", "exported_at"):
            print(f"  {_header_label(key)}: {json.dumps(header.get(key))}")
        target.mkdir()
        count = total = 0
        while True:
            (size,) = _U64.unpack(_read_exact(stream, _U64.size))
            if size == 0:
                break
            now = time.time_ns()
            segment = target / f"{count}_{now}-{now}.lnc"
            segment.write_bytes(_read_exact(stream, size))
            count += 1
            total += size
            print(f"  Imported segment {count} ({size} bytes)")
    meta = metadata_json(new_id, args.name, int(time.time()), None)
    with (target / METADATA).open("wb") as out:
        out.write(meta)
        out.flush()
        os.fsync(out.fileno())
    fsync_directory(target)
    print("\nImport Summary:")
    print(f"  New Topic ID: {new_id}")
    print(f"  Segments:     {count}")
    print(f"  Total:        {format_bytes(total)}")
    print("\n✓ Import completed successfully")
    return 0


def _header_label(key: str) -> str:
    return {"version": "Export version", "topic_id": "Original topic"}.get(key, "Exported at")


def _orphans(root: Path) -> list[Path]:
    """Topic directories without metadata, and deleted topics' tombstones (not topic 0's log)."""
    return [
        path
        for path in sorted(root.iterdir())
        if path.is_dir()
        and path.name != LEGACY_TOPIC
        and (path.name.startswith(TOMBSTONE_PREFIX) or _read_topic_dir(path) is None)
    ]


def _clean(args: argparse.Namespace) -> int:
    root = args.path / SEGMENTS_DIR
    if not root.is_dir():
        print(f"Segments directory does not exist: {root}")
        return 0
    orphans = _orphans(root)
    if not orphans:
        print(f"No orphaned topic directories found in: {root}")
        return 0
    sizes = [_directory_size(path) for path in orphans]
    total = sum(sizes)
    print(f"Found {len(orphans)} orphaned topic directories:")
    for path, size in zip(orphans, sizes, strict=True):
        print(f"  {path.name} ({size} bytes)")
    print(f"Total space to free: {total} bytes ({total / (1024 * 1024):.2f} MB)")
    if args.dry_run:
        print("\nDry run - no files were deleted.")
        print("Run without --dry-run to actually delete.")
        return 0
    for path in orphans:
        shutil.rmtree(path)
        print(f"Deleted: {path.name}")
    print(f"\nCleaned {len(orphans)} directories, freed {total} bytes.")
    return 0


def _find_recovery(args: argparse.Namespace) -> int:
    candidates = []
    for path in sorted(args.path.rglob("*.lnc")):
        parsed = parse_segment_name(path.name)
        if parsed is None or not path.is_file():
            continue
        scan = _scan_file(path)
        if parsed[2] is None or scan.valid_bytes < scan.size:
            candidates.append(path)
    if not candidates:
        print(f"No segments need recovery in: {args.path}")
        return 0
    print(f"Segments needing recovery in: {args.path}")
    for path in candidates:
        print(f"  {path}")
    return 0


# --- segment file commands --------------------------------------------------------------------


def _scan(args: argparse.Namespace) -> int:
    scan = _scan_file(args.path)
    print(f"Segment: {args.path}")
    print(f"  Valid bytes: {scan.valid_bytes}")
    print(f"  Valid records: {len(scan.records)}")
    print(f"  Truncated bytes: {scan.size - scan.valid_bytes}")
    if scan.valid_bytes < scan.size:
        print(f"  Corruption detected at offset: {scan.valid_bytes}")
    return 0


def _repair(args: argparse.Namespace) -> int:
    scan = _scan_file(args.path)
    if scan.valid_bytes < scan.size:
        os.truncate(args.path, scan.valid_bytes)
    print(f"Segment repaired: {args.path}")
    print(f"  Final size: {scan.valid_bytes} bytes")
    print(f"  Records preserved: {len(scan.records)}")
    if scan.valid_bytes < scan.size:
        print(f"  Truncated: {scan.size - scan.valid_bytes} bytes")
    return 0


def _dump(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise CliError("need --limit >= 0")
    scan = _scan_file(args.path, max_records=args.limit)
    print(f"Records in: {args.path}")
    offset = 0
    for index, record in enumerate(scan.records):
        print(f"  [{index}] offset={offset}, size={record.total_size}, payload={len(record.value)}")
        offset += record.total_size
    print(f"Displayed {len(scan.records)} records")
    return 0


def _no_index(args: argparse.Namespace) -> int:
    what = "rebuild" if args.command == "rebuild-index" else "inspect"
    raise CliError(_NO_INDEX.format(what=what))
