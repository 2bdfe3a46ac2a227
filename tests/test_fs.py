"""The durable-file helpers shared by server storage and the offset stores, and portability."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from lnc_client import _fs

from .helpers import run_python

WITHOUT_FCNTL_AND_FDATASYNC = """
import asyncio, os, sys, tempfile
sys.modules["fcntl"] = None
del os.fdatasync
import lnc_client, lnc_client.server
from lnc_client import _fs
from lnc_client.offsets import FileOffsetStore
assert not _fs.HAVE_FLOCK
directory = tempfile.mkdtemp()
store = FileOffsetStore(directory)
asyncio.run(store.save("app", 1, 42))
print(asyncio.run(store.load("app", 1)))
fd = os.open(os.path.join(directory, "data"), os.O_CREAT | os.O_WRONLY)
_fs.fdatasync(fd)
os.close(fd)
print("ok")
"""


def test_lnc_client_imports_and_stores_offsets_without_fcntl_or_fdatasync() -> None:
    result = run_python(WITHOUT_FCNTL_AND_FDATASYNC)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["42", "ok"]


def test_fdatasync_falls_back_to_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    monkeypatch.delattr(os, "fdatasync")
    monkeypatch.setattr(os, "fsync", synced.append)
    fd = os.open(tmp_path / "f", os.O_CREAT | os.O_WRONLY)
    try:
        _fs.fdatasync(fd)
    finally:
        os.close(fd)
    assert synced == [fd]


def test_write_atomically_replaces_then_syncs_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "metadata.json"
    target.write_bytes(b"old")
    (tmp_path / "metadata.json.tmp").write_bytes(b"leftover from a crash, longer than the data")
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync " + Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        real_fsync(fd)

    def replace(source: Path, destination: Path) -> None:
        events.append(f"replace {Path(source).name} {Path(destination).name}")
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    _fs.write_atomically(target, b"new")
    assert events == [
        "fsync metadata.json.tmp",
        "replace metadata.json.tmp metadata.json",
        f"fsync {tmp_path.name}",
    ]
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metadata.json"]


@pytest.mark.parametrize("flock", [True, False])
def test_file_lock_excludes_another_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flock: bool
) -> None:
    monkeypatch.setattr(_fs, "HAVE_FLOCK", flock)
    path = tmp_path / "sub" / "offset"
    order: list[str] = []

    def second() -> None:
        with _fs.FileLock(path):
            order.append("second")

    with _fs.FileLock(path):
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.2)  # time for the second holder to (wrongly) get in
        assert thread.is_alive()
        order.append("first")
    thread.join(10)
    assert order == ["first", "second"]
    assert path.with_name("offset.lock").exists() is flock


WINDOWS_LOCKS = """
import importlib, os, sys, tempfile, types
from pathlib import Path
sys.modules["fcntl"] = None
from lnc_client import _fs
calls = []
fake = types.ModuleType("msvcrt")
fake.LK_LOCK, fake.LK_UNLCK = 1, 0
busy = [2]
def locking(fd, mode, nbytes):
    position = os.lseek(fd, 0, os.SEEK_CUR)
    if mode == fake.LK_LOCK and busy[0]:
        busy[0] -= 1
        raise OSError(_fs._EDEADLOCK, "Resource deadlock avoided")  # 36 on Windows
    calls.append((os.path.basename(os.readlink(f"/proc/self/fd/{fd}")), mode, position, nbytes))
fake.locking = locking
sys.modules["msvcrt"] = fake
sys.platform, linux = "win32", sys.platform
importlib.reload(_fs)  # as loaded on Windows
sys.platform = linux
path = Path(tempfile.mkdtemp()) / "offsets"
with _fs.FileLock(path):
    calls.append("inside")
print(calls)
"""


WINDOWS_LOCK_REFUSED = """
import errno, sys, types
sys.modules["fcntl"] = None
from lnc_client import _fs
fake = types.ModuleType("msvcrt")
fake.LK_LOCK, fake.LK_UNLCK = 1, 0
tries = [0]
def locking(fd, mode, nbytes):
    tries[0] += 1
    raise OSError(errno.EACCES, "Permission denied")
fake.locking = locking
try:
    _fs._windows_lock(fake, 0)
except PermissionError:
    print("raised after", tries[0])
"""


def test_a_windows_lock_error_other_than_a_wait_is_raised_not_retried() -> None:
    result = run_python(WINDOWS_LOCK_REFUSED)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "raised after 1"


@pytest.mark.parametrize(
    ("system", "release", "loaded"),
    [
        ("Linux", "6.18.44-fc", True),
        ("Linux", "5.8.0", True),
        ("Linux", "5.4.0-150-generic", False),  # syncfs there hides writeback errors
        ("Linux", "4.19", False),
        ("Darwin", "23.1.0", False),
        ("Linux", "weird", False),
    ],
)
def test_syncfs_is_used_only_where_it_reports_write_errors(
    system: str, release: str, loaded: bool
) -> None:
    if loaded and sys.platform != "linux":
        pytest.skip("needs Linux's libc")
    assert (_fs._load_syncfs(system, release) is not None) is loaded


def test_file_lock_uses_msvcrt_locking_on_windows() -> None:
    """Without fcntl on Windows the lock is the platform's (other processes kept out), held
    through LK_LOCK's give-ups, on the lock file's first byte, released on exit."""
    result = run_python(WINDOWS_LOCKS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(
        [("offsets.lock", 1, 0, 1), "inside", ("offsets.lock", 0, 0, 1)]
    )
