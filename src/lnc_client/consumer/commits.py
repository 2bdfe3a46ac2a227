"""The consumer's commits: the fetcher's offset saved to an `OffsetStore` (and the server).

Data flow: `commit()` saves `Fetcher.offset` to the store, then (with `server_side_offsets`)
sends CommitOffset and waits for its answer. Auto-commit (`auto_commit_due`, `auto_commit`) runs
inside `poll()` before it fetches, so everything the caller received from earlier polls is
committed (at-least-once delivery); it saves to the store at once and sends CommitOffset
without waiting: the next poll (or `close()`) collects the answer and raises its error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from lnc_client import operations
from lnc_client.config import StandaloneConfig
from lnc_client.connection import Connection
from lnc_client.consumer.fetcher import Fetcher
from lnc_client.offsets import OffsetStore
from lnc_client.reconnect import ConnectionManager

__all__ = ["Committer"]


class Committer:
    """Commits of one consumer's offset.

    Args:
        config: The consumer's configuration.
        manager: The consumer's connections.
        fetcher: Whose `offset` (and topic) is committed.
        store: Where offsets are saved.
        consumer_id: The id sent with CommitOffset.
        on_commit: Called with the offset after every successful commit.

    Attributes:
        committed: The offset last saved to (or loaded from) the store.
        last_commit_at: Loop time of the last save (auto-commit counts from it).
    """

    def __init__(
        self,
        config: StandaloneConfig,
        manager: ConnectionManager,
        fetcher: Fetcher,
        store: OffsetStore,
        consumer_id: int,
        on_commit: Callable[[int], None] | None,
    ) -> None:
        self._config = config
        self._manager = manager
        self._fetcher = fetcher
        self._store = store
        self._consumer_id = consumer_id
        self._on_commit = on_commit
        self._server_committed: int | None = None
        self._server_commit: asyncio.Task[None] | None = None
        self.committed: int | None = None
        self.commits = 0
        """Offsets saved to the store so far."""
        self.last_commit_at = 0.0

    async def load(self) -> int | None:
        """Return the offset the store holds for this consumer and topic (None: nothing)."""
        fetcher = self._fetcher
        stored = await self._store.load(
            self._config.consumer_name, fetcher.topic_id, topic_name=fetcher.topic_name
        )
        if stored is not None:
            self.committed = stored
        return stored

    async def commit(self) -> int:
        """Commit the current offset to the store (and the server); return it.

        Raises:
            LanceError: The server's CommitOffset failed.
            OSError: The offset store could not write.
        """
        if self._fetcher.end_pending:
            await self._fetcher.resolve_end()
        offset = await self._save()
        if self._config.server_side_offsets:

            async def commit(conn: Connection) -> None:
                await self._commit_on_server(conn, offset)

            await self._manager.call(commit, timeout=self._config.request_timeout_s)
        self._notify(offset)
        return offset

    async def _save(self) -> int:
        fetcher = self._fetcher
        offset = fetcher.offset
        await self._store.save(
            self._config.consumer_name, fetcher.topic_id, offset, topic_name=fetcher.topic_name
        )
        self.committed = offset
        self.commits += 1
        self.last_commit_at = asyncio.get_running_loop().time()
        return offset

    async def _commit_on_server(self, conn: Connection, offset: int) -> None:
        await operations.commit_offset(
            conn,
            self._fetcher.topic_id,
            self._consumer_id,
            offset,
            timeout=self._config.request_timeout_s,
        )
        self._server_committed = max(offset, self._server_committed or 0)

    def _notify(self, offset: int) -> None:
        if self._on_commit is not None:
            self._on_commit(offset)

    async def auto_commit(self) -> None:
        """Save to the store now; send CommitOffset without waiting for its answer.

        The server's answer is collected by the next `poll()` (or `close()`), which raises its
        error, so a slow server never makes a poll overrun its timeout.
        """
        offset = await self._save()
        conn = self._manager.current
        if (
            self._config.server_side_offsets
            and self._server_commit is None
            and offset != self._server_committed
            and conn is not None
        ):
            loop = asyncio.get_running_loop()
            self._server_commit = loop.create_task(self._commit_on_server(conn, offset))
        self._notify(offset)

    async def collect_server_commit(self, *, wait: bool) -> None:
        """Raise the error of the auto-commit's CommitOffset, once it is answered.

        Args:
            wait: Wait for the answer (else only collect one that is already there).
        """
        task = self._server_commit
        if task is None or not (wait or task.done()):
            return
        self._server_commit = None
        await task

    def auto_commit_due(self, *, force: bool = False) -> bool:
        """Whether auto-commit should save now (`force`: whenever there is a change)."""
        interval = self._config.auto_commit_interval_s
        fetcher = self._fetcher
        if interval is None or fetcher.end_pending or fetcher.offset == self.committed:
            return False
        return force or asyncio.get_running_loop().time() - self.last_commit_at >= interval
