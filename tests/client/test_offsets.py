"""Offset stores: exact file contents, atomic durable replace, the lock, keys and bad input."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from pathlib import Path

import pytest

from lnc_client import offsets
from lnc_client.offsets import FileOffsetStore, MemoryOffsetStore, OffsetStore


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> OffsetStore:
    if request.param == "memory":
        return MemoryOffsetStore()
    return FileOffsetStore(tmp_path / "offsets")


async def test_round_trip_keys_and_delete(store: OffsetStore) -> None:
    assert await store.load("app", 1) is None
    await store.save("app", 1, 1050)
    await store.save("app", 2, 7)
    await store.save("other", 1, 3)
    await store.save("app", 1, 2100, topic_name="events")
    assert await store.load("app", 1) == 1050
    assert await store.load("app", 2) == 7
    assert await store.load("other", 1) == 3
    assert await store.load("app", 1, topic_name="events") == 2100
    await store.save("app", 1, 0)
    assert await store.load("app", 1) == 0
    await store.delete("app", 1)
    await store.delete("app", 1)
    assert await store.load("app", 1) is None
    assert await store.load("app", 1, topic_name="events") == 2100


async def test_a_recreated_topic_does_not_inherit_the_old_offset(store: OffsetStore) -> None:
    await store.save("app", 3, 500, topic_name="events")
    assert await store.load("app", 3, topic_name="events") == 500
    assert await store.load("app", 4, topic_name="events") is None
    assert await store.load("app", 0, topic_name="events") == 500


@pytest.mark.parametrize("offset", [-1, 1 << 64])
async def test_offsets_are_u64(store: OffsetStore, offset: int) -> None:
    with pytest.raises(ValueError, match="u64"):
        await store.save("app", 1, offset)


async def test_file_contents_are_exact(tmp_path: Path) -> None:
    store = FileOffsetStore(tmp_path / "deep" / "dir")
    await store.save("my-app", 1, 1050, topic_name="events")
    path = tmp_path / "deep" / "dir" / "my-app.topic-events.offset"
    assert path.read_bytes() == (
        b'{"consumer_name":"my-app","offset":1050,"topic_id":1,"topic_name":"events","version":1}\n'
    )
    await store.save("my-app", 9, 18446744073709551615)
    assert (tmp_path / "deep" / "dir" / "my-app.id-9.offset").read_bytes() == (
        b'{"consumer_name":"my-app","offset":18446744073709551615,"topic_id":9,'
        b'"topic_name":null,"version":1}\n'
    )
    assert sorted(os.listdir(path.parent)) == [
        "my-app.id-9.offset",
        "my-app.id-9.offset.lock",
        "my-app.topic-events.offset",
        "my-app.topic-events.offset.lock",
    ]


@pytest.mark.parametrize(
    ("name", "file_name"),
    [
        ("../../etc", "%2E%2E%2F%2E%2E%2Fetc.id-1.offset"),
        ("a.b~c d", "a%2Eb%7Ec%20d.id-1.offset"),
        ("zé/x", "z%C3%A9%2Fx.id-1.offset"),
        ("Ok_name-1", "Ok_name-1.id-1.offset"),
    ],
)
async def test_consumer_names_never_escape_the_directory(
    tmp_path: Path, name: str, file_name: str
) -> None:
    store = FileOffsetStore(tmp_path)
    assert store.path_for(name, 1) == tmp_path / file_name
    await store.save(name, 1, 5)
    assert await store.load(name, 1) == 5
    assert (tmp_path / file_name).exists()


def test_an_empty_consumer_name_cannot_name_a_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-empty consumer name"):
        FileOffsetStore(tmp_path).path_for("", 1)


async def test_save_is_write_fsync_rename_dirsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileOffsetStore(tmp_path)
    await store.save("app", 1, 10)
    path = store.path_for("app", 1)
    inode_before = path.stat().st_ino
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        kind = "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"
        target = os.readlink(f"/proc/self/fd/{fd}")
        events.append(f"fsync {kind} {Path(target).name}")
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        events.append(f"replace {Path(src).name} -> {Path(dst).name}")
        real_replace(src, dst)

    monkeypatch.setattr(offsets.os, "fsync", fsync)
    monkeypatch.setattr(offsets.os, "replace", replace)
    await store.save("app", 1, 20)
    assert events == [
        "fsync file app.id-1.offset.tmp",
        "replace app.id-1.offset.tmp -> app.id-1.offset",
        f"fsync dir {tmp_path.name}",
    ]
    assert path.stat().st_ino != inode_before
    assert not path.with_name("app.id-1.offset.tmp").exists()
    assert await store.load("app", 1) == 20


async def test_a_leftover_temp_file_from_a_crash_is_ignored_and_replaced(tmp_path: Path) -> None:
    store = FileOffsetStore(tmp_path)
    await store.save("app", 1, 10)
    (tmp_path / "app.id-1.offset.tmp").write_bytes(b'{"offset":')
    assert await store.load("app", 1) == 10
    await store.save("app", 1, 11)
    assert await store.load("app", 1) == 11
    assert not (tmp_path / "app.id-1.offset.tmp").exists()


async def test_save_waits_for_the_lock_held_by_another_process(tmp_path: Path) -> None:
    store = FileOffsetStore(tmp_path)
    await store.save("app", 1, 1)
    lock_path = tmp_path / "app.id-1.offset.lock"
    fd = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        saving = asyncio.create_task(store.save("app", 1, 2))
        done, _ = await asyncio.wait({saving}, timeout=0.2)
        assert not done
        assert await store.load("app", 1) == 1
        fcntl.flock(fd, fcntl.LOCK_UN)
        await asyncio.wait_for(saving, timeout=5)
    finally:
        os.close(fd)
    assert await store.load("app", 1) == 2


async def test_concurrent_saves_leave_one_whole_record(tmp_path: Path) -> None:
    store = FileOffsetStore(tmp_path)
    await asyncio.gather(*(store.save("app", 1, n) for n in range(1, 41)))
    record = json.loads((tmp_path / "app.id-1.offset").read_text())
    assert record["offset"] in range(1, 41)
    assert sorted(os.listdir(tmp_path)) == ["app.id-1.offset", "app.id-1.offset.lock"]


@pytest.mark.parametrize(
    "content",
    [b"", b"12", b'{"offset":-1,"topic_id":1}', b'{"offset":"5","topic_id":1}', b'{"topic_id":1}'],
)
async def test_a_corrupt_file_is_reported_not_read_as_zero(tmp_path: Path, content: bytes) -> None:
    store = FileOffsetStore(tmp_path)
    (tmp_path / "app.id-1.offset").write_bytes(content)
    with pytest.raises(ValueError, match="does not hold an offset record"):
        await store.load("app", 1)


async def test_delete_removes_the_file_and_tolerates_a_missing_directory(tmp_path: Path) -> None:
    store = FileOffsetStore(tmp_path / "never-created")
    await store.delete("app", 1)
    assert not (tmp_path / "never-created").exists()
    store = FileOffsetStore(tmp_path)
    await store.save("app", 1, 3)
    await store.delete("app", 1)
    assert not (tmp_path / "app.id-1.offset").exists()
    assert await store.load("app", 1) is None


def test_a_custom_store_is_a_subclass() -> None:
    class Incomplete(OffsetStore):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]
