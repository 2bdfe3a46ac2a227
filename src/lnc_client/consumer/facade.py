"""The public `StandaloneConsumer`: lifecycle, seeking, `poll`, iteration, over fetcher and commits.

`start()` connects (the `ConnectionManager` resolves the topic and subscribes on every new
connection), loads the committed offset through the `Committer` and places the `Fetcher`.
`poll()` collects a pending auto-commit answer, auto-commits when due and lets the fetcher
deliver the next records. `close()` stops the fetcher, commits, unsubscribes and disconnects.
The package docstring describes the whole data flow.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Callable
from typing import Self

from lnc_client import operations
from lnc_client._lifecycle import AsyncLifecycle
from lnc_client.config import Addresses, SeekPosition, StandaloneConfig, StartPosition, address_list
from lnc_client.connection import Connection
from lnc_client.consumer.commits import Committer
from lnc_client.consumer.fetcher import Fetcher
from lnc_client.consumer.iteration import RecordLoop
from lnc_client.consumer.result import PollResult, consumer_id_for
from lnc_client.discovery import ClusterClient
from lnc_client.errors import ConnectionError, LanceError, TimeoutError, TopicNotFoundError
from lnc_client.metrics import ConsumerMetrics
from lnc_client.offsets import FileOffsetStore, MemoryOffsetStore, OffsetStore
from lnc_client.pool import ConnectionPool
from lnc_client.protocol.control import TAIL_OFFSET
from lnc_client.protocol.records import TlvRecord
from lnc_client.reconnect import ConnectionManager, ConnectionWatch

__all__ = ["StandaloneConsumer"]


class StandaloneConsumer(AsyncLifecycle, ConnectionWatch):
    """Consumes one topic from a byte offset, with offsets kept in an `OffsetStore`.

    Connect with `consumer = await StandaloneConsumer.connect(address, config)` or
    `async with StandaloneConsumer(address, config) as consumer:`; then `poll()`,
    `async for record in consumer`, or `async for batch in consumer.batches()`.

    Args:
        address: `host:port`, `[v6]:port`, a bare host, or a list of them (seeds, tried in
            turn before `config.seeds`).
        config: The consumer's configuration; `consumer_name` and a topic id or name are needed.
        offset_store: Where offsets are committed. Default: a `FileOffsetStore` under
            `config.offset_dir` when it is set, else a `MemoryOffsetStore`.
        on_commit: Called with the offset after every successful commit (manual or auto).
        pool: Borrow the connection from this `ConnectionPool` (or `ClusterClient`, whose
            discovery then ranks the seeds) and give it back on close.

    Raises:
        ValueError: The config names no topic.
    """

    def __init__(
        self,
        address: Addresses,
        config: StandaloneConfig,
        offset_store: OffsetStore | None = None,
        *,
        on_commit: Callable[[int], None] | None = None,
        pool: ConnectionPool | ClusterClient | None = None,
    ) -> None:
        if not config.topic_id and not config.topic_name:
            raise ValueError("StandaloneConfig needs a topic_id or a topic_name")
        self._config = config
        self._manager = ConnectionManager(
            [*address_list(address), *config.seeds],
            config.connection_options(),
            config.reconnect,
            auto_reconnect=config.auto_reconnect,
            on_connect=self._on_connect,
            pool=pool,
        )
        if offset_store is None:
            offset_store = (
                FileOffsetStore(config.offset_dir)
                if config.offset_dir is not None
                else MemoryOffsetStore()
            )
        self._consumer_id = consumer_id_for(config.consumer_name)
        self._fetcher = Fetcher(config, self._manager)
        self._commits = Committer(
            config, self._manager, self._fetcher, offset_store, self._consumer_id, on_commit
        )
        self._record_loop = RecordLoop(self.seek, lambda: self._closed)
        self._subscribed_offset: int | None = None
        self._started = False
        self._closed = False
        self._polling = False
        self._errors = 0

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        address: Addresses,
        config: StandaloneConfig,
        offset_store: OffsetStore | None = None,
        *,
        on_commit: Callable[[int], None] | None = None,
        pool: ConnectionPool | ClusterClient | None = None,
    ) -> StandaloneConsumer:
        """Create a consumer and `start()` it (the arguments are those of the class).

        Raises:
            ConnectionError: No server could be reached (or auto_reconnect is off and the first
                attempt failed).
            TimeoutError: Not connected within `connect_timeout_s`.
            TopicNotFoundError: The topic does not exist.
            ValueError: A stored offset is unreadable, or the file store got no consumer name.
        """
        consumer = cls(address, config, offset_store, on_commit=on_commit, pool=pool)
        return await consumer.start()

    async def start(self) -> Self:
        """Connect, resolve the topic, and pick the start offset.

        The start offset is the committed one from the offset store; else (with
        `server_side_offsets`) the one the server's SubscribeAck returns, when it is not 0;
        else `config.start_position` (END is resolved with a tail fetch now). All of it is
        bounded by `connect_timeout_s`; on any failure the consumer is closed.

        Raises:
            TimeoutError: Not started within `connect_timeout_s`.
        """
        if self._started:
            return self
        loop = asyncio.get_running_loop()
        limit = self._config.connect_timeout_s
        try:
            async with asyncio.timeout(limit):
                await self._manager.get(deadline=loop.time() + limit)
                stored = await self._commits.load()
                if stored is not None:
                    self._fetcher.offset = stored
                elif self._subscribed_offset:
                    self._fetcher.offset = self._subscribed_offset
                elif self._config.start_position is SeekPosition.END:
                    await self._fetcher.end_now()
                else:
                    self.seek_to(self._config.start_position)
        except builtins.TimeoutError as error:
            await self._abandon_start()
            if isinstance(error, LanceError):
                raise
            last = self._manager.last_error
            detail = f" (last connect error: {last})" if last is not None else ""
            raise TimeoutError(f"starting the consumer took longer than {limit} s{detail}") from (
                last or error
            )
        except BaseException:
            await self._abandon_start()
            raise
        self._started = True
        self._commits.last_commit_at = loop.time()
        return self

    async def _abandon_start(self) -> None:
        self._closed = self._fetcher.stopped = True
        await self._manager.close()

    async def _on_connect(self, conn: Connection) -> None:
        """Run on every new connection: resolve the topic once, (re)subscribe if asked to."""
        timeout = self._config.request_timeout_s
        fetcher = self._fetcher
        if not fetcher.topic_id:
            assert fetcher.topic_name is not None
            topics = await operations.list_topics(conn, timeout=timeout)
            found = next((t for t in topics if t.name == fetcher.topic_name), None)
            if found is None:
                raise TopicNotFoundError(fetcher.topic_name)
            fetcher.topic_id = found.id
        elif fetcher.topic_name is None:
            topic = await operations.get_topic(conn, fetcher.topic_id, timeout=timeout)
            fetcher.topic_name = topic.name
        if self._config.server_side_offsets:
            ack = await operations.subscribe(
                conn,
                fetcher.topic_id,
                fetcher.offset,
                self._config.max_fetch_bytes,
                self._consumer_id,
                timeout=timeout,
            )
            if not self._started:
                self._subscribed_offset = ack.offset

    async def close(self) -> None:
        """Stop fetching, auto-commit (when enabled), unsubscribe, and close the connection.

        The closing commit saves to the store, and to the server only over a connection that is
        still open (a closing consumer does not reconnect). Errors are raised after the
        connection is closed.
        """
        if self._closed:
            return
        self._record_loop.rewind()
        self._closed = self._fetcher.stopped = True
        dropped = self._fetcher.drop_fetches()
        commits = self._commits
        try:
            await asyncio.gather(*dropped, return_exceptions=True)
            if self._started and commits.auto_commit_due(force=True):
                await commits.auto_commit()
            await commits.collect_server_commit(wait=True)
            conn = self._manager.current
            if self._started and self._config.server_side_offsets and conn is not None:
                await operations.unsubscribe(
                    conn,
                    self._fetcher.topic_id,
                    self._consumer_id,
                    timeout=self._config.request_timeout_s,
                )
        finally:
            await self._manager.close()

    # --- state ----------------------------------------------------------------------------

    @property
    def config(self) -> StandaloneConfig:
        """The consumer's configuration."""
        return self._config

    @property
    def consumer_name(self) -> str:
        """The consumer name (keys the offset store)."""
        return self._config.consumer_name

    @property
    def consumer_id(self) -> int:
        """The consumer id sent to the server: `consumer_id_for(consumer_name)`."""
        return self._consumer_id

    @property
    def topic_id(self) -> int:
        """The topic's id (resolved from the name on connect)."""
        return self._fetcher.topic_id

    @property
    def topic_name(self) -> str | None:
        """The topic's name (looked up on connect when only the id was configured)."""
        return self._fetcher.topic_name

    @property
    def current_offset(self) -> int:
        """Byte offset of the next record to deliver (a pending `seek_to_end` not yet applied)."""
        return self._fetcher.offset

    @property
    def committed_offset(self) -> int | None:
        """The offset last committed to the store by this consumer (or loaded from it)."""
        return self._commits.committed

    @property
    def high_water_mark(self) -> int:
        """The topic's end offset as last seen from the server."""
        return self._fetcher.hwm

    @property
    def lag(self) -> int:
        """`high_water_mark - current_offset`: bytes stored but not delivered yet (>= 0)."""
        return max(0, self._fetcher.hwm - self._fetcher.offset)

    @property
    def reconnects(self) -> int:
        """How many times the connection has been re-established."""
        return self._manager.reconnects

    def metrics(self) -> ConsumerMetrics:
        """Return a snapshot of the counters, the position and the lag."""
        fetcher = self._fetcher
        return ConsumerMetrics(
            **fetcher.counts,
            reconnects=self.reconnects,
            errors=self._errors,
            commits=self._commits.commits,
            current_offset=self.current_offset,
            committed_offset=self.committed_offset,
            high_water_mark=self.high_water_mark,
            lag=self.lag,
            fetch_latency=fetcher.fetch_latency.snapshot(),
        )

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed

    # --- seeking --------------------------------------------------------------------------

    def seek(self, offset: int) -> None:
        """Continue at byte `offset`; drops the carried tail and any fetch in flight.

        `offset` must be a record boundary: 0, or an offset this consumer reported.
        """
        if not 0 <= offset < TAIL_OFFSET:
            raise ValueError(f"an offset is in 0..2**64-2, not {offset}")
        self._record_loop.forget()
        self._fetcher.seek(offset)

    def seek_to(self, position: StartPosition) -> None:
        """Seek to `SeekPosition.BEGINNING`, `SeekPosition.END` or `("offset", n)`."""
        if position is SeekPosition.BEGINNING:
            self.seek(0)
        elif position is SeekPosition.END:
            self.seek_to_end()
        elif isinstance(position, tuple) and len(position) == 2 and position[0] == "offset":
            self.seek(position[1])
        else:
            raise ValueError(f"not a seek position: {position!r}")

    def rewind(self) -> None:
        """Seek to the beginning of the topic (offset 0)."""
        self.seek(0)

    def seek_to_end(self) -> None:
        """Continue at the topic's end as it is when this is called.

        The u64::MAX tail fetch is sent at once (with the next turn of the event loop, before
        anything awaited after this call), so the end is pinned now: a record that arrives
        before the next poll is delivered by it, not skipped. The next poll (or `commit()`)
        moves `current_offset` there; `await seek_to_end_now()` waits for it instead.
        """
        self._record_loop.forget()
        self._fetcher.seek_to_end()

    async def seek_to_end_now(self) -> int:
        """Seek to the topic's end, asking the server now; returns the end offset.

        Raises:
            LanceError: The tail fetch failed (after reconnects and retries within
                `request_timeout_s`).
        """
        self._record_loop.forget()
        return await self._fetcher.end_now()

    # --- committing and polling -----------------------------------------------------------

    async def commit(self) -> int:
        """Commit `current_offset` to the store (and the server); returns the offset.

        The server's CommitOffset is sent only with `server_side_offsets`.

        Raises:
            LanceError: The server's CommitOffset failed (after retries within
                `request_timeout_s`).
            OSError: The offset store could not write.
        """
        self._check_usable()
        return await self._commits.commit()

    def _check_usable(self) -> None:
        if self._closed:
            raise ConnectionError("the consumer is closed")
        if not self._started:
            raise RuntimeError("the consumer is not started: use connect() or async with")

    async def poll(self, timeout: float | None = None) -> PollResult | None:
        """Return the next records, or None when none came within `timeout`.

        Args:
            timeout: Longest wait in seconds (default `config.poll_timeout_s`). A fetch still
                in flight when it runs out keeps going; the next poll takes its answer.

        Raises:
            ServerCatchingUpError: The offset stayed past the server's end for
                `catching_up_timeout_s`.
            UndecodableRecordError: The data at the offset is not a TLV stream (a record claims
                more bytes than an ingest can hold, or a compressed envelope is corrupt); its
                `topic_id` and `offset` say where. `seek()` past it to go on.
            LanceError: A non-retryable server error (e.g. the topic was deleted), or any
                failure when `auto_reconnect` is off.
            RuntimeError: Another `poll()` of this consumer is running.
        """
        self._check_usable()
        if self._polling:
            raise RuntimeError("poll() is already running on this consumer")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._config.poll_timeout_s if timeout is None else timeout)
        self._polling = True
        try:
            commits = self._commits
            await commits.collect_server_commit(wait=False)
            if commits.auto_commit_due():
                await commits.auto_commit()
            return await self._fetcher.poll_until(loop, deadline)
        except LanceError:
            self._errors += 1
            raise
        finally:
            self._polling = False

    # --- iteration ------------------------------------------------------------------------

    async def batches(
        self, *, timeout: float | None = None, limit: int | None = None
    ) -> AsyncIterator[PollResult]:
        """Yield every non-empty `PollResult`; ends on `close()` or after `limit` batches.

        Args:
            timeout: Per-poll timeout (default `config.poll_timeout_s`); it only bounds how
                often auto-commit and `close()` are noticed.
            limit: Stop after this many batches (None: only on close).
        """
        self._record_loop.rewind()
        count = 0
        while not self._closed and (limit is None or count < limit):
            result = await self.poll(timeout)
            if result is not None:
                count += 1
                yield result

    def records(
        self, *, timeout: float | None = None, limit: int | None = None
    ) -> AsyncIterator[TlvRecord]:
        """Yield every record, one at a time; ends on `close()` or after `limit` records.

        `async for record in consumer` too. A record counts as processed when the loop asks
        for the next one; a loop that ends inside a batch leaves the rest of it uncommitted
        (`consumer.iteration`). An explicit `commit()` inside the loop commits the whole batch.
        """
        return self._record_loop.records(self.batches(timeout=timeout), limit)

    def __aiter__(self) -> AsyncIterator[TlvRecord]:
        return self.records()
