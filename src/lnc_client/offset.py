"""`lnc_client.offset`: the offset stores under lnc-client 0.2.9's module name and file layout.

`MemoryOffsetStore` and `OffsetStore` are those of `lnc_client.offsets`. `FileOffsetStore` here
keeps 0.2.9's files, so a consumer upgraded from 0.2.9 finds the offsets it committed there:
`<dir>/<consumer>_<topic name or id>.offset` (slashes and backslashes in the consumer name
become `_`), holding `{"consumer": ..., "topic_id": ..., "topic_name": ..., "offset": ...}`.
Unlike 0.2.9, writes go through the locked, fsynced, atomic path of
`lnc_client.offsets.FileOffsetStore`. As in 0.2.9, a file that cannot be parsed reads as
"no offset" (with a warning in the log).

New code should use `lnc_client.FileOffsetStore` (one file per key, names percent-encoded).
"""

from __future__ import annotations

import logging
from pathlib import Path

from lnc_client import offsets
from lnc_client.offsets import MemoryOffsetStore, OffsetStore

__all__ = ["FileOffsetStore", "MemoryOffsetStore", "OffsetStore"]

log = logging.getLogger(__name__)


class FileOffsetStore(offsets.FileOffsetStore):
    """Offsets in lnc-client 0.2.9's files, written atomically and durably under a lock.

    Args:
        base_dir: The directory; created (with parents) at once, as 0.2.9 did.
    """

    def __init__(self, base_dir: str | Path) -> None:
        super().__init__(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, consumer_name: str, topic_id: int, *, topic_name: str | None = None) -> Path:
        """Return `<dir>/<consumer>_<topic name or id>.offset`, 0.2.9's file name."""
        safe_name = consumer_name.replace("/", "_").replace("\\", "_")
        return self.base_dir / f"{safe_name}_{topic_name or topic_id}.offset"

    def _record(
        self, consumer_name: str, topic_id: int, offset: int, topic_name: str | None
    ) -> dict[str, object]:
        return {
            "consumer": consumer_name,
            "offset": offset,
            "topic_id": topic_id,
            "topic_name": topic_name,
        }

    async def load(
        self, consumer_name: str, topic_id: int, *, topic_name: str | None = None
    ) -> int | None:
        """Return the committed offset, or None (no file, an unreadable one, another topic)."""
        try:
            return await super().load(consumer_name, topic_id, topic_name=topic_name)
        except (ValueError, OSError) as error:
            log.warning("ignoring offset file of %r: %s", consumer_name, error)
            return None
