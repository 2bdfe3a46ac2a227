"""One topic's segment files: appends and rotation (writer thread), snapshots and reads (readers).

Layout, as the real server writes it (PROTOCOL.md §7): a topic directory holds segment files
whose bytes are the ingest payloads joined together, nothing else. An open (active) segment is
named `<start_index>_<start_ns>.lnc`, a closed one `<start_index>_<start_ns>-<end_ns>.lnc`.
Offsets are byte positions in the concatenation of all segments, ordered by start index, then
start time, closed before active.

Threads and data flow:

* The group-commit writer thread is the only one that mutates a `TopicLog`: `append` writes
  payloads (rotating at the size limit), `sync` makes them durable and then *publishes* a new
  immutable `TopicSnapshot`. Published bytes are therefore always durable, and they are
  published before the Acks for them are handed back to the event loop.
* Readers (Fetch, in executor threads) take `log.snapshot`, pin the files they need with
  `SegmentFile.acquire`, and `pread` them. A file retired by retention or deletion is closed
  only when its last reader releases it.
* `TopicLog.recover` runs at startup: deletes empty files, cuts every active segment back to its
  last durable batch boundary and closes it.

Durable boundaries. The real server recovers an active segment by scanning it as a TLV chain and
cutting at the first bad header (§2.9), which drops every later batch when one client sent a
payload that is not TLV (the server acks without parsing). We never cut below an acknowledged
byte instead: next to each active segment `<stem>.lnc` lies `<stem>.durable`, two 16-byte slots
`[size u64][seq u32][crc32 u32]` written alternately. `sync` makes the data durable, then writes
the durable size into the next slot and syncs that file, and only then are the bytes published
and acked. Recovery cuts the segment at the newest valid slot's size, whatever bytes clients
sent; a segment without a `.durable` file (written by the real server or an older version) falls
back to the TLV scan. The real server ignores the file (its extension is not `.lnc`); it is
deleted once the segment is closed and the rename is durable.
"""

from __future__ import annotations

import bisect
import mmap
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lnc_client._fs import fdatasync, fsync_directory, fsync_path
from lnc_client.protocol.records import record_header

__all__ = [
    "SegmentFile",
    "SegmentView",
    "TopicLog",
    "TopicSnapshot",
    "durable_prefix",
    "mark_path",
    "parse_segment_name",
    "read_mark",
    "scan_tlv",
]

_NAME: Final = re.compile(r"(\d+)_(\d+)(?:-(\d+))?\.lnc")
_MARK_SUFFIX: Final = ".durable"
_MARK: Final = struct.Struct("<QII")
_MARK_BODY: Final = struct.Struct("<QI")
_U32: Final = struct.Struct("<I")
_IOV_MAX: Final = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16
_OPEN_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
_MARK_FLAGS: Final = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC

Buffer = bytes | bytearray | memoryview


class SegmentFile:
    """A read-only descriptor of one segment, shared by readers and closed after the last one.

    Renaming the file (on close) does not disturb it; retiring it (retention, topic deletion)
    closes the descriptor as soon as no reader holds it.
    """

    __slots__ = ("_fd", "_lock", "_refs", "_retired")

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._lock = threading.Lock()
        self._refs = 0
        self._retired = False

    def acquire(self) -> bool:
        """Pin the file for a read; False when it has been retired."""
        with self._lock:
            if self._retired:
                return False
            self._refs += 1
            return True

    def release(self) -> None:
        """Unpin after a read; closes the descriptor if the file was retired meanwhile."""
        with self._lock:
            self._refs -= 1
            if self._retired and self._refs == 0:
                os.close(self._fd)

    def retire(self) -> None:
        """Forbid new reads and close the descriptor once the current ones finish."""
        with self._lock:
            if self._retired:
                return
            self._retired = True
            if self._refs == 0:
                os.close(self._fd)

    def pread(self, size: int, offset: int) -> bytes:
        """Read up to `size` bytes at `offset` (the caller holds a pin)."""
        return os.pread(self._fd, size, offset)


@dataclass(frozen=True, slots=True)
class SegmentView:
    """A segment as readers see it.

    Attributes:
        start_index: The index in the file name.
        start_ns: Creation time in the file name (nanoseconds).
        end_ns: Close time for a closed segment, None for the active one.
        size: Durable bytes readers may see.
        path: The file's current path.
        file: The shared read descriptor.
    """

    start_index: int
    start_ns: int
    end_ns: int | None
    size: int
    path: Path
    file: SegmentFile

    @property
    def closed(self) -> bool:
        """Whether the segment is closed (its name carries an end time)."""
        return self.end_ns is not None


@dataclass(frozen=True, slots=True)
class TopicSnapshot:
    """An immutable view of a topic's segments in offset order.

    Attributes:
        segments: The segments, first offset first.
        starts: The offset at which each segment begins.
        total: Bytes in all segments: the end offset.
    """

    segments: tuple[SegmentView, ...] = ()
    starts: tuple[int, ...] = ()
    total: int = 0

    @classmethod
    def of(cls, segments: Sequence[SegmentView]) -> TopicSnapshot:
        """Build a snapshot, computing each segment's start offset."""
        starts = []
        total = 0
        for segment in segments:
            starts.append(total)
            total += segment.size
        return cls(tuple(segments), tuple(starts), total)

    def read(self, offset: int, size: int) -> bytes:
        """Return up to `size` bytes from `offset`, spanning segments (blocking; a thread).

        Files retired since the snapshot was taken are skipped, which shortens the window;
        the caller then sees fewer bytes, never wrong ones at a given position of this
        snapshot.
        """
        end = min(offset + size, self.total)
        parts: list[bytes] = []
        index = max(bisect.bisect_right(self.starts, offset) - 1, 0)
        position = offset
        while position < end and index < len(self.segments):
            segment = self.segments[index]
            within = position - self.starts[index]
            want = min(end - position, segment.size - within)
            if want > 0:
                if not segment.file.acquire():
                    break
                try:
                    chunk = segment.file.pread(want, within)
                finally:
                    segment.file.release()
                parts.append(chunk)
                position += len(chunk)
                if len(chunk) < want:
                    break
            index += 1
        return parts[0] if len(parts) == 1 else b"".join(parts)


def parse_segment_name(name: str) -> tuple[int, int, int | None] | None:
    """Split a segment file name into (start index, start ns, end ns or None if active).

    Returns None for a name that is not a segment's. Segments are in log order when sorted by
    (start index, start ns).
    """
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    return int(match[1]), int(match[2]), None if match[3] is None else int(match[3])


def _stray_position(stem: str) -> tuple[int, int, int]:
    """Where real Lance reads a `.lnc` file not named by the segment rules.

    It reads every `.lnc` file, placed by the leading `<index>_<ns>` numbers of its name, each 0
    when it does not parse (lance/src/topic.rs `read_from_offset`). Reading it at the same place
    keeps the same byte offsets on both servers; it counts as closed and is never written.
    """
    parts = [*stem.split("-", 1)[0].split("_"), "", ""]
    index, start_ns = (int(part) if part.isdigit() else 0 for part in parts[:2])
    return index, start_ns, start_ns


def scan_tlv(path: Path) -> int:
    """Return the length of the longest prefix of `path` that is whole TLV records.

    The real recovery rule (PROTOCOL.md §2.9): `[type u8][length u32 LE][value]`, where type
    0xFF announces `[0xFF][ext type u16][length u32 LE]`; the file is cut at the first record
    whose header or value runs past the end.
    """
    size = path.stat().st_size
    if size == 0:
        return 0
    with (
        path.open("rb") as handle,
        mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
        memoryview(mapped) as view,
    ):
        position = 0
        while (header := record_header(view, position)) is not None:
            header_size, length = header
            after = position + header_size + length
            if after > size:
                break
            position = after
        return position


def mark_path(segment: Path) -> Path:
    """The durable-size file of an active segment (`<stem>.durable`)."""
    return segment.with_suffix(_MARK_SUFFIX)


def read_mark(path: Path) -> int | None:
    """Return the newest valid durable size in a `.durable` file; 0 if no slot is valid yet.

    Returns None when the file does not exist (a segment written without one).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    best: tuple[int, int] | None = None
    for slot in range(2):
        start = slot * _MARK.size
        if len(raw) < start + _MARK.size:
            break
        size, seq, crc = _MARK.unpack_from(raw, start)
        if zlib.crc32(raw[start : start + _MARK_BODY.size]) != crc:
            continue
        if best is None or seq > best[0]:
            best = (seq, size)
    return 0 if best is None else best[1]


def _pack_mark(size: int, seq: int) -> bytes:
    body = _MARK_BODY.pack(size, seq & 0xFFFFFFFF)
    return body + _U32.pack(zlib.crc32(body))


def durable_prefix(path: Path) -> int:
    """Bytes of an active segment to keep at recovery: never below an acknowledged byte."""
    size = path.stat().st_size
    durable = read_mark(mark_path(path))
    if durable is None:
        return scan_tlv(path)
    return min(durable, size)


def _write_all(fd: int, buffers: list[Buffer]) -> None:
    pending = [memoryview(b).cast("B") for b in buffers if len(b)]
    while pending:
        group = pending[:_IOV_MAX]
        written = os.writev(fd, group)
        done = 0
        while done < len(group) and written >= len(group[done]):
            written -= len(group[done])
            done += 1
        rest = pending[done:]
        if written and rest:
            rest[0] = rest[0][written:]
        pending = rest


class TopicLog:
    """The segments of one topic directory.

    Args:
        directory: The topic directory (created on first write if missing).
        segment_max_bytes: Rotation size.
        closed: Closed segments found at startup, in order.
        next_index: The start index for the next segment.
    """

    def __init__(
        self,
        directory: Path,
        segment_max_bytes: int,
        closed: Sequence[SegmentView] = (),
        next_index: int = 0,
    ) -> None:
        self.directory = directory
        self.segment_max_bytes = segment_max_bytes
        self.snapshot = TopicSnapshot.of(closed)
        self._closed = list(closed)
        self._next_index = next_index
        self._fd: int | None = None
        self._device = 0
        self._mark_fd: int | None = None
        self._mark_seq = 0
        self._stale_marks: list[Path] = []
        self._active: SegmentView | None = None
        self._written = 0
        self._synced = 0
        self._batches = 0
        self._dir_dirty = False
        self.dirty = False

    @classmethod
    def recover(cls, directory: Path, segment_max_bytes: int) -> TopicLog:
        """Open a topic directory at startup: recover active segments, then load (blocking).

        Empty segment files are deleted; active ones are cut at their last durable batch
        boundary (`durable_prefix`) and renamed to the closed form, so the next write opens a
        new segment. `.durable` files are deleted once the renames are durable.
        """
        changed = False
        found: list[tuple[int, int, int, Path]] = []
        marks = list(directory.glob(f"*{_MARK_SUFFIX}"))
        for entry in sorted(directory.iterdir()):
            if not entry.is_file():
                continue
            parsed = parse_segment_name(entry.name)
            if parsed is None:
                if entry.suffix == ".lnc":
                    found.append((*_stray_position(entry.stem), entry))
                continue
            index, start_ns, end_ns_or_none = parsed
            if end_ns_or_none is None:
                valid = durable_prefix(entry)
                if valid < entry.stat().st_size:
                    os.truncate(entry, valid)
                    fsync_path(entry)
                end_ns = time.time_ns()
                closed_path = entry.with_name(f"{index}_{start_ns}-{end_ns}.lnc")
                entry.rename(closed_path)
                entry, changed = closed_path, True
            else:
                end_ns = end_ns_or_none
            if entry.stat().st_size == 0:
                entry.unlink()
                changed = True
                continue
            found.append((index, start_ns, end_ns, entry))
        if changed:
            fsync_directory(directory)
        for mark in marks:
            mark.unlink(missing_ok=True)
        found.sort()
        views = [
            SegmentView(index, start_ns, end_ns, path.stat().st_size, path, SegmentFile(path))
            for index, start_ns, end_ns, path in found
        ]
        next_index = max((v.start_index for v in views), default=-1) + 1
        return cls(directory, segment_max_bytes, views, next_index)

    # --- writer thread -----------------------------------------------------------------------

    def append(self, payloads: list[Buffer]) -> None:
        """Append payloads in order, rotating whenever the active segment reaches the limit.

        Like the real server, the size is checked after each payload, so a segment can exceed
        the limit by one payload.
        """
        group: list[Buffer] = []
        limit = self.segment_max_bytes
        for payload in payloads:
            if self._fd is None:
                self._open_active()
            group.append(payload)
            self._written += len(payload)
            self._batches += 1
            if self._written >= limit:
                self._write(group)
                group = []
                self._rotate()
        if group:
            self._write(group)

    def sync(self) -> None:
        """Make everything appended durable (fdatasync, directory fsync), then publish it."""
        if self._fd is not None and self._written > self._synced:
            fdatasync(self._fd)
            self._write_mark(self._written)
        if self._dir_dirty:
            fsync_directory(self.directory)
        self.synced()

    def mark_appended_durable(self) -> None:
        """Record the appended size in the `.durable` mark, unsynced (group commit by `syncfs`).

        Call it only after a `syncfs` made the appended bytes durable, and `synced` only after a
        second `syncfs` made the mark durable.
        """
        if self._fd is not None and self._written > self._synced:
            self._put_mark(self._written)

    def synced(self) -> None:
        """Publish everything appended: durable, with its mark (`sync`, or two `syncfs`)."""
        self._synced = self._written
        if self._dir_dirty:
            self._dir_dirty = False
            for mark in self._stale_marks:  # their segments' closed names are durable now
                mark.unlink(missing_ok=True)
            self._stale_marks.clear()
        self.dirty = False
        self._publish()

    @property
    def device(self) -> int | None:
        """The filesystem (st_dev) of the open active segment; None when none is open."""
        return self._device if self._fd is not None else None

    def fileno(self) -> int | None:
        """The active segment's descriptor (writer thread), None when none is open."""
        return self._fd

    def abandon_unsynced(self) -> None:
        """After a failed write: cut the active segment back to its durable size.

        If even that fails, the active segment is closed for writing so that the next write
        starts a fresh one after it. Its durable bytes stay readable where they were (offsets
        do not move); it keeps its active name, so the next start recovers it, cutting a torn
        tail. Readers never see the unsynced bytes.
        """
        self.dirty = False
        if self._fd is None or self._written == self._synced:
            return
        try:
            os.ftruncate(self._fd, self._synced)
            self._written = self._synced
        except OSError:
            self._abandon_active()
            raise

    def close(self) -> None:
        """Close the active segment: sync it, rename it to the closed form, publish."""
        if self._fd is not None:
            self._rotate()
        self.sync()

    def retire(self) -> list[SegmentView]:
        """Stop writing and close every file (topic deletion); returns the segments."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._close_mark()
        segments = list(self.snapshot.segments)
        self._closed = []
        self._active = None
        self.snapshot = TopicSnapshot()
        for segment in segments:
            segment.file.retire()
        return segments

    def drop_closed(self, doomed: Sequence[SegmentView]) -> None:
        """Delete closed segments (retention): unpublish, retire, unlink, fsync the directory."""
        if not doomed:
            return
        gone = {id(s) for s in doomed}
        self._closed = [s for s in self._closed if id(s) not in gone]
        self._publish()
        for segment in doomed:
            segment.file.retire()
            segment.path.unlink(missing_ok=True)
        fsync_directory(self.directory)

    @property
    def closed_segments(self) -> list[SegmentView]:
        """Closed segments in offset order (writer thread)."""
        return list(self._closed)

    def _open_active(self) -> None:
        if not self.directory.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            fsync_directory(self.directory.parent)
        index, start_ns = self._next_index, time.time_ns()
        path = self.directory / f"{index}_{start_ns}.lnc"
        self._fd = os.open(path, _OPEN_FLAGS, 0o644)
        self._device = os.fstat(self._fd).st_dev
        self._mark_fd = os.open(mark_path(path), _MARK_FLAGS, 0o644)
        self._mark_seq = 0
        self._active = SegmentView(index, start_ns, None, 0, path, SegmentFile(path))
        self._written = self._synced = self._batches = 0
        self._dir_dirty = self.dirty = True

    def _abandon_active(self) -> None:
        active = self._active
        assert self._fd is not None
        assert active is not None
        os.close(self._fd)
        self._fd = None
        self._close_mark()  # kept: the next start cuts the segment at its durable size
        self._closed.append(
            SegmentView(
                active.start_index, active.start_ns, None, self._synced, active.path, active.file
            )
        )
        self._next_index = active.start_index + max(self._batches, 1)
        self._active = None
        self._written = self._synced = self._batches = 0
        self._publish()

    def _write_mark(self, size: int) -> None:
        """Record `size` as durable in the next slot of the `.durable` file and sync it."""
        self._put_mark(size)
        assert self._mark_fd is not None
        fdatasync(self._mark_fd)

    def _put_mark(self, size: int) -> None:
        assert self._mark_fd is not None
        self._mark_seq += 1
        slot = (self._mark_seq % 2) * _MARK.size
        os.pwrite(self._mark_fd, _pack_mark(size, self._mark_seq), slot)

    def _close_mark(self) -> None:
        if self._mark_fd is not None:
            os.close(self._mark_fd)
            self._mark_fd = None

    def _write(self, group: list[Buffer]) -> None:
        assert self._fd is not None
        self.dirty = True
        _write_all(self._fd, group)

    def _rotate(self) -> None:
        active = self._active
        assert self._fd is not None
        assert active is not None
        fdatasync(self._fd)
        self._write_mark(self._written)  # whole even if the rename below is lost in a crash
        os.close(self._fd)
        self._fd = None
        end_ns = max(time.time_ns(), active.start_ns + 1)
        closed_path = active.path.with_name(f"{active.start_index}_{active.start_ns}-{end_ns}.lnc")
        active.path.rename(closed_path)
        self._close_mark()
        self._stale_marks.append(mark_path(active.path))
        self._closed.append(
            SegmentView(
                active.start_index, active.start_ns, end_ns, self._written, closed_path, active.file
            )
        )
        self._next_index = active.start_index + max(self._batches, 1)
        self._active = None
        self._written = self._synced = self._batches = 0
        self._dir_dirty = self.dirty = True

    def _publish(self) -> None:
        segments = list(self._closed)
        if self._active is not None:
            active = self._active
            segments.append(
                SegmentView(
                    active.start_index,
                    active.start_ns,
                    None,
                    self._synced,
                    active.path,
                    active.file,
                )
            )
        self.snapshot = TopicSnapshot.of(segments)
