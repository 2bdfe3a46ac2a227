"""Offset stores: where a consumer keeps the byte offset it has consumed up to, per topic.

An offset is the byte position, in the topic's stored stream, of the first record the consumer
has not delivered yet (PROTOCOL.md §5: offsets are byte offsets into the concatenated payloads).
`StandaloneConsumer` loads it when it connects and saves it on `commit()` (and auto-commit).

Data flow: `consumer.commit()` -> `OffsetStore.save(consumer_name, topic_id, offset,
topic_name=...)`; `StandaloneConsumer.connect` -> `OffsetStore.load(...)` -> the start offset.

Keys. An offset belongs to (consumer name, topic). The topic part of the key is the topic's
name when it is known and its id otherwise: names are stable, while a deleted topic's id can be
given to a new topic after a server restart (§4.5). The record also holds the topic id, and
`FileOffsetStore.load` ignores a record whose id differs from the topic's current id (the topic
was deleted and created again, so the old offset would point into different data).

`FileOffsetStore` writes one small JSON file per key: to a temporary file, fsync'd, renamed over
the old file (atomic), then the directory is fsync'd (`lnc_client._fs.write_atomically`), all
under an exclusive `flock` on a lock file (`lnc_client._fs.FileLock`), so two processes never
interleave their writes and a crash leaves either the old or the new offset, never a torn one.
Every file operation runs in a worker thread (`asyncio.to_thread`). A custom store (a database,
a key-value service) is a subclass of `OffsetStore`.
"""

from __future__ import annotations

import asyncio
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Final
from urllib.parse import quote

from lnc_client._fs import FileLock, fsync_directory, write_atomically

__all__ = ["FileOffsetStore", "MemoryOffsetStore", "OffsetStore"]

_FORMAT_VERSION: Final = 1
_SUFFIX: Final = ".offset"


def _topic_key(topic_id: int, topic_name: str | None) -> str:
    return f"topic-{topic_name}" if topic_name else f"id-{topic_id}"


class OffsetStore(ABC):
    """Where committed offsets live; subclass it for a custom store.

    Every method is a coroutine and may be called from any task of the consumer's event loop.
    `topic_name`, when given, keys the offset instead of `topic_id` (see the module docstring).
    """

    @abstractmethod
    async def load(
        self, consumer_name: str, topic_id: int, *, topic_name: str | None = None
    ) -> int | None:
        """Return the committed offset, or None when nothing was committed."""

    @abstractmethod
    async def save(
        self, consumer_name: str, topic_id: int, offset: int, *, topic_name: str | None = None
    ) -> None:
        """Durably store `offset` as the committed offset."""

    @abstractmethod
    async def delete(
        self, consumer_name: str, topic_id: int, *, topic_name: str | None = None
    ) -> None:
        """Forget the committed offset (nothing happens when there is none)."""


class MemoryOffsetStore(OffsetStore):
    """Offsets in a dict: they live as long as the store object (the default store)."""

    def __init__(self) -> None:
        self._offsets: dict[tuple[str, str], tuple[int, int]] = {}

    async def load(
        self, consumer_name: str, topic_id: int, *, topic_name: str | None = None
    ) -> int | None:
        """Return the committed offset, or None (also when the topic id changed)."""
        entry = self._offsets.get((consumer_name, _topic_key(topic_id, topic_name)))
        if entry is None or not _same_topic(entry[0], topic_id):
            return None
        return entry[1]

    async def save(
        self, consumer_name: str, topic_id: int, offset: int, *, topic_name: str | None = None
    ) -> None:
        """Store `offset` for (consumer, topic)."""
        _check_offset(offset)
        self._offsets[(consumer_name, _topic_key(topic_id, topic_name))] = (topic_id, offset)

    async def delete(
        self, consumer_name: str, topic_id: int, *, topic_name: str | None = None
    ) -> None:
        """Forget the offset of (consumer, topic)."""
        self._offsets.pop((consumer_name, _topic_key(topic_id, topic_name)), None)


class FileOffsetStore(OffsetStore):
    """Offsets in files under `base_dir`, written atomically and durably under a lock.

    File name: `<consumer>.<topic key>.offset`, where `<consumer>` is the consumer name
    percent-encoded (every byte outside `A-Z a-z 0-9 _ -` becomes `%XX`, so names never escape
    the directory and `.` separates the parts unambiguously) and `<topic key>` is
    `topic-<name>` or `id-<id>`. Content: one line of JSON with sorted keys, e.g.
    `{"consumer_name":"my-app","offset":1050,"topic_id":1,"topic_name":"events","version":1}`.
    The lock file is the same path with `.lock` appended; it is created on the first save and
    left in place (removing it would race with another process locking it).

    Args:
        base_dir: The directory; created (with parents) on the first save.
    """

    def __init__(self, base_dir: str | os.PathLike[str]) -> None:
        self.base_dir = Path(base_dir)

    def path_for(self, consumer_name: str, topic_id: int, *, topic_name: str | None = None) -> Path:
        """Return the file that holds the offset of (consumer, topic).

        Raises:
            ValueError: An empty consumer name (it cannot name a file).
        """
        if not consumer_name:
            raise ValueError("FileOffsetStore needs a non-empty consumer name")
        encoded = quote(consumer_name, safe="").replace(".", "%2E").replace("~", "%7E")
        return self.base_dir / f"{encoded}.{_topic_key(topic_id, topic_name)}{_SUFFIX}"

    async def load(
        self, consumer_name: str, topic_id: int, *, topic_name: str | None = None
    ) -> int | None:
        """Return the committed offset, or None (no file, or the topic id changed).

        Raises:
            ValueError: The file exists but does not hold a valid offset record.
        """
        path = self.path_for(consumer_name, topic_id, topic_name=topic_name)
        return await asyncio.to_thread(_read_offset, path, topic_id)

    async def save(
        self, consumer_name: str, topic_id: int, offset: int, *, topic_name: str | None = None
    ) -> None:
        """Replace the file atomically: temp file, fsync, rename, directory fsync, under lock."""
        _check_offset(offset)
        path = self.path_for(consumer_name, topic_id, topic_name=topic_name)
        record = self._record(consumer_name, topic_id, offset, topic_name)
        text = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
        await asyncio.to_thread(_write_atomically, path, text.encode())

    def _record(
        self, consumer_name: str, topic_id: int, offset: int, topic_name: str | None
    ) -> dict[str, object]:
        """The JSON object written for one offset (`load` reads `offset` and `topic_id`)."""
        return {
            "consumer_name": consumer_name,
            "offset": offset,
            "topic_id": topic_id,
            "topic_name": topic_name,
            "version": _FORMAT_VERSION,
        }

    async def delete(
        self, consumer_name: str, topic_id: int, *, topic_name: str | None = None
    ) -> None:
        """Remove the file (under the lock) and fsync the directory."""
        path = self.path_for(consumer_name, topic_id, topic_name=topic_name)
        await asyncio.to_thread(_remove, path)


def _same_topic(stored_id: int, topic_id: int) -> bool:
    return stored_id == topic_id or 0 in (stored_id, topic_id)


def _check_offset(offset: int) -> None:
    if not 0 <= offset < 1 << 64:
        raise ValueError(f"an offset is a u64, not {offset}")


def _read_offset(path: Path, topic_id: int) -> int | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text)
        offset, stored_id = record["offset"], record["topic_id"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} does not hold an offset record: {error}") from None
    if not isinstance(offset, int) or not isinstance(stored_id, int) or offset < 0:
        raise ValueError(f"{path} does not hold an offset record: {text!r}")
    return offset if _same_topic(stored_id, topic_id) else None


def _write_atomically(path: Path, data: bytes) -> None:
    with FileLock(path):
        write_atomically(path, data)


def _remove(path: Path) -> None:
    if not path.parent.exists():
        return
    with FileLock(path):
        try:
            path.unlink()
        except FileNotFoundError:
            return
        fsync_directory(path.parent)
