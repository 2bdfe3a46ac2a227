"""The topic registry: ids, names, metadata.json files and each topic's `TopicLog`.

The registry lives on the event loop; it changes in memory at once (so a second CreateTopic of
the same name sees the first) and hands the disk side to the writer thread as functions built
here (`create_on_disk`, `write_metadata`, `delete_on_disk`). A deletion is the exception: the
topic is hidden at once (`begin_delete`) and forgotten, or restored, only when the disk side
has succeeded, or failed without changing anything (`end_delete`). Startup
(`TopicRegistry.load`, in a thread) reads `segments/*/metadata.json`, recovers each topic
directory and sets the next id to the largest id found + 1, as the real server does
(PROTOCOL.md §4.5, §7).

metadata.json is written exactly as the real server writes it: serde_json's pretty printer
(2-space indent) over `{id, name, created_at, topic_epoch, auth, retention}` in that order,
with `retention` either null or `{"max_bytes": N, "max_age_secs": N}`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from lnc_client._fs import fsync_directory, write_atomically
from lnc_client.protocol.control import RetentionInfo, TopicInfo
from lnc_client.server.storage.segments import TopicLog

__all__ = [
    "LEGACY_TOPIC",
    "METADATA",
    "SEGMENTS_DIR",
    "TOMBSTONE_PREFIX",
    "Topic",
    "TopicRegistry",
    "metadata_json",
]

_log = logging.getLogger(__name__)

SEGMENTS_DIR: Final = "segments"
TOPIC_EPOCH: Final = 1
METADATA: Final = "metadata.json"
LEGACY_TOPIC: Final = "0"
TOMBSTONE_PREFIX: Final = ".deleted-"
"""Prefix of a deleted topic's directory until it is removed (never a valid topic name)."""
_METADATA_DELETED: Final = "metadata.json.deleted"
"""metadata.json of a topic being deleted: no server loads the directory as a topic any more."""


@dataclass(slots=True)
class Topic:
    """A registered topic.

    Attributes:
        id: Topic id (>= 1).
        name: Topic name, also its directory name.
        created_at: Creation time, seconds since the epoch.
        retention: Retention settings, or None.
        log: The topic's segments.
    """

    id: int
    name: str
    created_at: int
    retention: RetentionInfo | None
    log: TopicLog

    def info(self, *, with_retention: bool = False) -> TopicInfo:
        """The topic as the protocol describes it."""
        retention = self.retention if with_retention else None
        return TopicInfo(self.id, self.name, self.created_at, TOPIC_EPOCH, retention)

    def metadata_json(self) -> bytes:
        """metadata.json content, byte for byte as the real server writes it."""
        return metadata_json(self.id, self.name, self.created_at, self.retention)


def metadata_json(
    topic_id: int, name: str, created_at: int, retention: RetentionInfo | None
) -> bytes:
    """A topic's metadata.json content, byte for byte as the real server writes it."""
    limits = None
    if retention is not None:
        limits = {"max_bytes": retention.max_bytes, "max_age_secs": retention.max_age_secs}
    body = {
        "id": topic_id,
        "name": name,
        "created_at": created_at,
        "topic_epoch": TOPIC_EPOCH,
        "auth": None,
        "retention": limits,
    }
    return json.dumps(body, indent=2, ensure_ascii=False).encode()


class TopicRegistry:
    """Every topic of one data directory.

    Args:
        data_dir: The server's data directory.
        segment_max_bytes: Rotation size for every topic log.
    """

    def __init__(self, data_dir: Path, segment_max_bytes: int) -> None:
        self.root = data_dir / SEGMENTS_DIR
        self.segment_max_bytes = segment_max_bytes
        self.by_id: dict[int, Topic] = {}
        self.by_name: dict[str, Topic] = {}
        self.next_id = 1
        self.deleting: set[str] = set()
        self._legacy: TopicLog | None = None

    @classmethod
    def load(cls, data_dir: Path, segment_max_bytes: int) -> TopicRegistry:
        """Read and recover a data directory (blocking: run it in a thread)."""
        registry = cls(data_dir, segment_max_bytes)
        registry.root.mkdir(parents=True, exist_ok=True)
        for directory in sorted(registry.root.iterdir()):
            if not directory.is_dir():
                continue
            if directory.name.startswith(TOMBSTONE_PREFIX):
                _remove_tombstone(directory)
                continue
            meta = directory / METADATA
            if (directory / _METADATA_DELETED).is_file() and not meta.is_file():
                _remove_tombstone(directory)  # a delete stopped before its directory rename
                continue
            if meta.is_file():
                # an OSError (EIO, EACCES) stops the start: a topic skipped for a passing error
                # could see its id handed out again and its directory written over
                raw_bytes = meta.read_bytes()
                try:
                    raw = json.loads(raw_bytes)
                    topic_id, name = int(raw["id"]), str(raw["name"])
                except (ValueError, KeyError, TypeError) as error:
                    # as real Lance does: the topic is not loaded, the server still starts
                    _log.warning("skipping topic directory %s: bad %s: %s", directory, meta, error)
                    continue
                registry._register(
                    raw, topic_id, name, TopicLog.recover(directory, segment_max_bytes)
                )
            elif directory.name == LEGACY_TOPIC:
                registry._legacy = TopicLog.recover(directory, segment_max_bytes)
        ids = [t.id for t in registry.by_id.values()]
        registry.next_id = max(ids, default=0) + 1
        return registry

    def _register(self, raw: dict[str, Any], topic_id: int, name: str, log: TopicLog) -> None:
        retention = raw.get("retention")
        topic = Topic(
            id=topic_id,
            name=name,
            created_at=int(raw.get("created_at", 0)),
            retention=None
            if retention is None
            else RetentionInfo(int(retention["max_age_secs"]), int(retention["max_bytes"])),
            log=log,
        )
        if topic.name == LEGACY_TOPIC and self._legacy is not None:
            topic.log = self._legacy
        self.by_id[topic.id] = topic
        self.by_name[topic.name] = topic

    def logs(self) -> list[TopicLog]:
        """Every open log, the legacy topic-0 log included."""
        logs = [t.log for t in self.by_id.values()]
        if self._legacy is not None and all(log is not self._legacy for log in logs):
            logs.append(self._legacy)
        return logs

    def log_for_ingest(self, topic_id: int) -> TopicLog | None:
        """The log an ingest for `topic_id` goes to; None when the topic is unknown.

        Topic 0 always passes and writes to `segments/0/` (PROTOCOL.md §2.3).
        """
        topic = self.by_id.get(topic_id)
        if topic is not None:
            return topic.log
        if topic_id != 0:
            return None
        named = self.by_name.get(LEGACY_TOPIC)
        if named is not None:
            return named.log
        if self._legacy is None:
            self._legacy = TopicLog(self.root / LEGACY_TOPIC, self.segment_max_bytes)
        return self._legacy

    def add(self, name: str, retention: RetentionInfo | None) -> Topic:
        """Register a new topic in memory with the next id (disk: `create_on_disk`)."""
        directory = self.root / name
        log = (
            self._legacy
            if name == LEGACY_TOPIC and self._legacy is not None
            else TopicLog(directory, self.segment_max_bytes)
        )
        topic = Topic(self.next_id, name, int(time.time()), retention, log)
        self.next_id += 1
        self.by_id[topic.id] = topic
        self.by_name[name] = topic
        return topic

    def remove(self, topic: Topic) -> None:
        """Forget a topic in memory (disk: `delete_on_disk`)."""
        self.by_id.pop(topic.id, None)
        if self.by_name.get(topic.name) is topic:
            del self.by_name[topic.name]
        if topic.log is self._legacy:
            self._legacy = None

    def begin_delete(self, topic: Topic) -> None:
        """Hide a topic while it is deleted on disk; its name stays taken (`deleting`)."""
        self.by_id.pop(topic.id, None)
        if self.by_name.get(topic.name) is topic:
            del self.by_name[topic.name]
        self.deleting.add(topic.name)

    def end_delete(self, topic: Topic, *, deleted: bool) -> None:
        """Forget a topic whose directory is gone, or restore one whose deletion changed nothing."""
        self.deleting.discard(topic.name)
        if not deleted:
            self.by_id[topic.id] = topic
            self.by_name[topic.name] = topic
        elif topic.log is self._legacy:
            self._legacy = None

    # --- disk side, run on the writer thread ------------------------------------------------

    def create_on_disk(self, topic: Topic) -> None:
        """Create the topic directory and its metadata.json, durably."""
        directory = topic.log.directory
        directory.mkdir(parents=True, exist_ok=True)
        fsync_directory(self.root)
        self.write_metadata(topic)

    def write_metadata(self, topic: Topic) -> None:
        """Atomically replace metadata.json (temp file, fsync, rename, directory fsync)."""
        write_atomically(topic.log.directory / METADATA, topic.metadata_json())

    def delete_on_disk(self, topic: Topic) -> OSError | None:
        """Delete the topic: hide metadata.json, rename the directory to a tombstone, remove it.

        Returns:
            None, or the error that left (part of) the tombstone behind: the topic is deleted
            all the same (startup skips tombstones and removes them). Also the error of a
            delete that could not be undone: metadata.json stays hidden, so startup would
            remove the directory; the topic counts as deleted and takes no more records.

        Raises:
            OSError: A step failed and was undone durably; nothing changed.
        """
        directory = topic.log.directory
        # metadata.json goes first: real Lance loads any directory holding one, a tombstone too
        os.rename(directory / METADATA, directory / _METADATA_DELETED)
        tombstone = self.root / f"{TOMBSTONE_PREFIX}{topic.id}-{time.time_ns()}"
        try:
            fsync_directory(directory)
            os.rename(directory, tombstone)
        except OSError as error:
            try:  # show metadata.json again, durably: else startup removes the directory
                os.rename(directory / _METADATA_DELETED, directory / METADATA)
                fsync_directory(directory)
            except OSError:
                topic.log.retire()
                return error
            raise
        topic.log.retire()
        try:
            fsync_directory(self.root)
            shutil.rmtree(tombstone)
            fsync_directory(self.root)
        except OSError as error:
            return error
        return None


def _remove_tombstone(directory: Path) -> None:
    try:
        shutil.rmtree(directory)
    except OSError as error:  # not a topic either way; the operator may remove it
        _log.warning("cannot remove the deleted topic directory %s: %s", directory, error)
