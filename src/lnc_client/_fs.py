"""Durable files: data sync, directory sync, atomic replace, and an exclusive file lock.

This is the one place that knows how to make a file's bytes and a directory's entries durable.
Both layers that keep files use it: the embedded server's storage (`server/storage`: segment
appends, rotation, topic metadata and deletion) and the client's `FileOffsetStore`
(`offsets.py`). It imports nothing but the standard library and nothing of either layer, so it
is a shared utility below both: the server importing it does not import a client module, and
the client importing it does not import the server. (`protocol/` stays free of I/O, so it is
not there.)

Data flow of `write_atomically(path, data)`: write `data` to `<path>.tmp`, fsync it, rename it
over `path` (atomic), fsync the directory; a crash leaves the old or the new content, never a
torn one. `syncfs(fd)` makes a whole filesystem durable in one call (the server's group
commit over many topics); it returns False where `syncfs(2)` does not exist.

Portability: `import lnc_client` works where `fcntl` or `os.fdatasync` does not exist.
`fdatasync` falls back to `os.fsync`; a directory sync is skipped where a directory cannot be
opened (Windows, where renames are made durable by the file system itself); without `fcntl`,
`FileLock` excludes the threads of this process only (another process is not kept out).
Every call looks its `os` function up when it runs, so tests may intercept `os.fsync`,
`os.fdatasync` and `os.replace`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, TracebackType
from typing import ClassVar, Final

try:
    import fcntl
except ImportError:  # Windows: no flock
    HAVE_FLOCK = False
else:
    HAVE_FLOCK = True

_msvcrt: ModuleType | None = None
if not HAVE_FLOCK and sys.platform == "win32":
    import msvcrt as _windows_locks

    _msvcrt = _windows_locks

__all__ = [
    "HAVE_FLOCK",
    "FileLock",
    "fdatasync",
    "fsync_directory",
    "fsync_path",
    "syncfs",
    "write_atomically",
]

_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY: Final = getattr(os, "O_DIRECTORY", 0)
_DIRECTORY_SYNC: Final = os.name != "nt"
_EDEADLOCK: Final = getattr(errno, "EDEADLOCK", errno.EDEADLK)
"""What msvcrt's LK_LOCK raises when it gave up waiting (36 on Windows)."""
_TEMP_SUFFIX: Final = ".tmp"
_LOCK_SUFFIX: Final = ".lock"


def fdatasync(fd: int) -> None:
    """Make a file's data durable: `os.fdatasync`, or `os.fsync` where that is missing."""
    sync = getattr(os, "fdatasync", None) or os.fsync
    sync(fd)


_SYNCFS_REPORTS_ERRORS: Final = (5, 8)
"""Linux release from which `syncfs(2)` returns the writeback errors of the filesystem's files;
before it, a failed writeback went unreported (an Ack could follow lost data)."""


def _kernel(release: str) -> tuple[int, ...]:
    """`"6.18.0-foo"` -> (6, 18); () when it does not start with numbers."""
    numbers = []
    for part in release.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def _load_syncfs(system: str, release: str) -> Callable[[int], int] | None:
    """`syncfs` from libc on Linux >= 5.8; None elsewhere (callers fall back to fdatasync)."""
    if system != "Linux" or _kernel(release) < _SYNCFS_REPORTS_ERRORS:
        return None
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).syncfs
    except (OSError, AttributeError, TypeError):  # no libc found, or no syncfs in it
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    loaded: Callable[[int], int] = function
    return loaded


_SYNCFS: Final = (
    _load_syncfs(os.uname().sysname, os.uname().release) if hasattr(os, "uname") else None
)


def syncfs(fd: int) -> bool:
    """Make the whole filesystem holding `fd` durable (Linux `syncfs(2)`): data and metadata.

    Since Linux 5.8 it reports the writeback errors of any file of that filesystem.

    Returns:
        False when the call does not exist here (nothing was done: sync file by file).

    Raises:
        OSError: The sync failed.
    """
    if _SYNCFS is None:
        return False
    if _SYNCFS(fd) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"syncfs: {os.strerror(code)}")
    return True


def fsync_path(path: Path) -> None:
    """Make the file at `path` durable (data and metadata)."""
    fd = os.open(path, os.O_RDONLY | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path: Path) -> None:
    """Make a directory's entries (files created, renamed, deleted) durable."""
    if not _DIRECTORY_SYNC:
        return
    fd = os.open(path, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, atomically and durably.

    `data` goes to `<path>.tmp` (created or truncated), which is fsync'd and renamed over
    `path`; then the directory is fsync'd. A leftover `.tmp` from a crash is overwritten.
    """
    temporary = path.with_name(path.name + _TEMP_SUFFIX)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    fsync_directory(path.parent)


class FileLock:
    """An exclusive lock on `<path>.lock`, held for a `with` block (blocking: use a thread).

    The lock file is created (with its directory) on first use and left in place: removing it
    would race with another process locking it. The platform's lock keeps other processes out:
    an advisory `flock` with `fcntl`, `msvcrt.locking` of the file's first byte on Windows.
    Where neither exists, only other threads of this process are kept out.

    Args:
        path: The file the lock protects.
        lock_path: The lock file, when another program fixes its name (default `<path>.lock`).
    """

    _local_locks: ClassVar[dict[Path, threading.Lock]] = {}
    _local_guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path, *, lock_path: Path | None = None) -> None:
        self._lock_path = lock_path or path.with_name(path.name + _LOCK_SUFFIX)
        self._fd = -1
        self._local: threading.Lock | None = None

    def __enter__(self) -> None:
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        if not HAVE_FLOCK and _msvcrt is None:
            with FileLock._local_guard:
                key = self._lock_path.absolute()
                self._local = FileLock._local_locks.setdefault(key, threading.Lock())
            self._local.acquire()
            return
        self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | _CLOEXEC, 0o644)
        try:
            if _msvcrt is not None:
                _windows_lock(_msvcrt, self._fd)
            else:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self._fd)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._local is not None:
            self._local.release()
            self._local = None
            return
        try:
            if _msvcrt is not None:
                os.lseek(self._fd, 0, os.SEEK_SET)
                _msvcrt.locking(self._fd, _msvcrt.LK_UNLCK, 1)
            else:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = -1


def _windows_lock(msvcrt: ModuleType, fd: int) -> None:
    """Lock the first byte of `fd`, waiting as long as another process holds it.

    `LK_LOCK` tries once a second for about 10 s, then raises; the wait goes on like `flock`'s.
    """
    os.lseek(fd, 0, os.SEEK_SET)
    while True:
        try:
            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
        except OSError as error:
            if error.errno == _EDEADLOCK:  # LK_LOCK gave up: the other holder still has it
                continue
            raise  # a bad descriptor, no access: waiting cannot help
        return
