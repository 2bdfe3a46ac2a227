"""`StandaloneConsumer`: reads a topic with Fetch, window by window, and tracks its offset.

Data flow of one `poll()`:

1. At most one fetch is in flight: a task that sends `Fetch(topic, position, size)` where
   `position = current_offset + len(tail)` and `size` is `max_fetch_bytes`, grown to fit a
   record whose header is already in the tail (a record larger than the window never stalls;
   the next window shrinks back). When the last known high-water mark could be reached by the
   window, a tail fetch (`u64::MAX`, PROTOCOL.md §5) is pipelined right behind it, so `lag` is
   measured against the server's real end, never faked.
2. The server answers with a raw window that may cut records anywhere.
   `decode_stream(tail + window)` returns the complete records and the bytes they use (opening
   the producer's LZ4 envelopes); the rest becomes the new tail. `current_offset` advances by
   exactly the bytes of the records delivered, so windows as small as 7 bytes lose nothing.
3. A full window starts the next fetch at once (`prefetch`), so the server works while the caller
   handles the records. An empty window means nothing new: the next fetch waits
   `poll_interval_ms`. CatchingUp (0x12: the offset lies past the end) backs off
   `catching_up_backoff_s`, doubling, and `poll()` raises `ServerCatchingUpError` once it has
   lasted `catching_up_timeout_s`.

`poll(timeout)` waits for the in-flight fetch without ever cancelling it: a poll that times out
leaves the fetch running and the next poll takes its answer, so a slow server can never shift
answers onto the wrong request or deliver a record twice (lnc-client 0.2.9's D6). A lost
connection (or a server restart) drops the tail and resumes from `current_offset` on a new
connection. `seek*`/`rewind` are synchronous: they drop the tail and any fetch in flight.

Offsets are saved to an `OffsetStore` by `commit()`, and by auto-commit every
`auto_commit_interval_s` inside `poll()` (before it fetches, so everything the caller received
from the previous polls is committed: at-least-once delivery) and on `close()`. The consumer id
used with the server's Subscribe/CommitOffset is FNV-1a 64 of the UTF-8 consumer name
(`consumer_id_for`), the same in every process and on every machine.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Self, TypeVar

from lnc_client import operations
from lnc_client._lifecycle import AsyncLifecycle
from lnc_client.config import Address, SeekPosition, StandaloneConfig, StartPosition
from lnc_client.connection import Connection
from lnc_client.errors import (
    ConnectionError,
    LanceError,
    NotLeaderError,
    ProtocolError,
    ServerCatchingUpError,
    TimeoutError,
    TopicNotFoundError,
)
from lnc_client.offsets import FileOffsetStore, MemoryOffsetStore, OffsetStore
from lnc_client.protocol.control import TAIL_OFFSET, FetchResult
from lnc_client.protocol.frame import MAX_PAYLOAD_SIZE
from lnc_client.protocol.records import (
    EXTENDED_HEADER_SIZE,
    RECORD_HEADER_SIZE,
    RecordType,
    TlvRecord,
    decode_stream,
)
from lnc_client.reconnect import ConnectionManager

__all__ = ["PollResult", "StandaloneConsumer", "consumer_id_for"]

_log = logging.getLogger(__name__)

_FNV_OFFSET_BASIS: Final = 0xCBF29CE484222325
_FNV_PRIME: Final = 0x100000001B3
_U64_MASK: Final = 0xFFFFFFFFFFFFFFFF
_RECORD_HEADER: Final = struct.Struct("<BI")
_EXTENDED_LENGTH: Final = struct.Struct("<I")
_MAX_BACKOFF_DOUBLINGS: Final = 4
_T = TypeVar("_T")


def consumer_id_for(consumer_name: str) -> int:
    """Return the consumer id of a consumer name: FNV-1a 64-bit of its UTF-8 bytes.

    The id keys the server's Subscribe/CommitOffset bookkeeping. It depends on nothing but the
    name (0.2.9 used Python's salted `hash()`, so every process got another id: D8), e.g.
    `consumer_id_for("") == 0xCBF29CE484222325` and `consumer_id_for("a") == 0xAF63DC4C8601EC8C`.
    """
    value = _FNV_OFFSET_BASIS
    for byte in consumer_name.encode("utf-8"):
        value = ((value ^ byte) * _FNV_PRIME) & _U64_MASK
    return value


@dataclass(frozen=True, slots=True)
class PollResult:
    """The records one `poll()` delivered.

    Attributes:
        data: The stored bytes of the delivered records (LZ4 envelopes stay compressed here).
        records: The records, in order (envelopes opened).
        start_offset: Byte offset of the first record.
        end_offset: Byte offset just past the last record: the consumer's new `current_offset`.
        high_water_mark: The topic's end offset as last seen from the server.
        record_count: `len(records)`.
    """

    data: bytes
    records: list[TlvRecord]
    start_offset: int
    end_offset: int
    high_water_mark: int
    record_count: int

    @property
    def is_empty(self) -> bool:
        """Whether no record was delivered."""
        return self.record_count == 0

    @property
    def lag(self) -> int:
        """Bytes stored after this batch that the consumer has not received yet."""
        return max(0, self.high_water_mark - self.end_offset)


@dataclass(frozen=True, slots=True)
class _Fetched:
    """What one fetch task brought back: a window (and maybe the end), or only the end."""

    position: int
    requested: int
    window: FetchResult | None
    end: int | None


class _ReconnectFailedError(Exception):
    """Raised inside a fetch task when no connection can be had: never retried."""

    def __init__(self, error: LanceError) -> None:
        super().__init__(str(error))
        self.error = error


def _forget(task: asyncio.Task[_T]) -> None:
    """Cancel a task whose result is not wanted (or mark its exception as seen)."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


class StandaloneConsumer(AsyncLifecycle):
    """Consumes one topic from a byte offset, with offsets kept in an `OffsetStore`.

    Connect with `consumer = await StandaloneConsumer.connect(address, config)` or
    `async with StandaloneConsumer(address, config) as consumer:`; then `poll()`,
    `async for record in consumer`, or `async for batch in consumer.batches()`.

    Args:
        address: `host:port` (or several: they are tried in turn, with `config.seeds`).
        config: The consumer's configuration; `consumer_name` and a topic id or name are needed.
        offset_store: Where offsets are committed. Default: a `FileOffsetStore` under
            `config.offset_dir` when it is set, else a `MemoryOffsetStore`.
        on_commit: Called with the offset after every successful commit (manual or auto).

    Raises:
        ValueError: The config names no topic.
    """

    def __init__(
        self,
        address: str | Address | Sequence[str | Address],
        config: StandaloneConfig,
        offset_store: OffsetStore | None = None,
        *,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        if not config.topic_id and not config.topic_name:
            raise ValueError("StandaloneConfig needs a topic_id or a topic_name")
        addresses = [address] if isinstance(address, str | Address) else list(address)
        self._config = config
        self._manager = ConnectionManager(
            [*addresses, *config.seeds],
            config.connection_options(),
            config.reconnect,
            auto_reconnect=config.auto_reconnect,
            on_connect=self._on_connect,
        )
        if offset_store is None:
            offset_store = (
                FileOffsetStore(config.offset_dir)
                if config.offset_dir is not None
                else MemoryOffsetStore()
            )
        self._store = offset_store
        self._on_commit = on_commit
        self._consumer_id = consumer_id_for(config.consumer_name)
        self._topic_id = config.topic_id
        self._topic_name: str | None = config.topic_name or None
        self._offset = 0
        self._tail = b""
        self._hwm = 0
        self._fetches: deque[asyncio.Task[_Fetched]] = deque()
        self._end_pending = False
        self._not_before = 0.0
        self._retries = 0
        self._catching_up_since: float | None = None
        self._catching_up_replies = 0
        self._committed: int | None = None
        self._server_committed: int | None = None
        self._server_commit: asyncio.Task[None] | None = None
        self._last_commit_at = 0.0
        self._subscribed_offset: int | None = None
        self._started = False
        self._closed = False
        self._polling = False

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        address: str | Address | Sequence[str | Address],
        config: StandaloneConfig,
        offset_store: OffsetStore | None = None,
        *,
        on_commit: Callable[[int], None] | None = None,
    ) -> StandaloneConsumer:
        """Create a consumer and `start()` it (the arguments are those of the class).

        Raises:
            ConnectionError: No server could be reached (or auto_reconnect is off and the first
                attempt failed).
            TimeoutError: Not connected within `connect_timeout_s`.
            TopicNotFoundError: The topic does not exist.
            ValueError: A stored offset is unreadable, or the file store got no consumer name.
        """
        consumer = cls(address, config, offset_store, on_commit=on_commit)
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
                stored = await self._store.load(
                    self._config.consumer_name, self._topic_id, topic_name=self._topic_name
                )
                if stored is not None:
                    self._offset = self._committed = stored
                elif self._subscribed_offset:
                    self._offset = self._subscribed_offset
                else:
                    await self._apply_start_position(self._config.start_position)
        except builtins.TimeoutError as error:
            await self._abandon_start()
            if isinstance(error, LanceError):
                raise
            raise TimeoutError(f"starting the consumer took longer than {limit} s") from error
        except BaseException:
            await self._abandon_start()
            raise
        self._started = True
        self._last_commit_at = loop.time()
        return self

    async def _abandon_start(self) -> None:
        self._closed = True
        await self._manager.close()

    async def _apply_start_position(self, position: StartPosition) -> None:
        self.seek_to(position)
        if self._end_pending:
            await self.seek_to_end_now()

    async def _on_connect(self, conn: Connection) -> None:
        """Run on every new connection: resolve the topic once, (re)subscribe if asked to."""
        timeout = self._config.request_timeout_s
        if not self._topic_id:
            assert self._topic_name is not None
            topics = await operations.list_topics(conn, timeout=timeout)
            found = next((t for t in topics if t.name == self._topic_name), None)
            if found is None:
                raise TopicNotFoundError(self._topic_name)
            self._topic_id = found.id
        elif self._topic_name is None:
            topic = await operations.get_topic(conn, self._topic_id, timeout=timeout)
            self._topic_name = topic.name
        if self._config.server_side_offsets:
            ack = await operations.subscribe(
                conn,
                self._topic_id,
                self._offset,
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
        self._closed = True
        dropped = self._drop_fetches()
        try:
            await asyncio.gather(*dropped, return_exceptions=True)
            if self._started and self._auto_commit_due(force=True):
                await self._auto_commit()
            await self._collect_server_commit(wait=True)
            conn = self._manager.current
            if self._started and self._config.server_side_offsets and conn is not None:
                await operations.unsubscribe(
                    conn, self._topic_id, self._consumer_id, timeout=self._config.request_timeout_s
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
        return self._topic_id

    @property
    def topic_name(self) -> str | None:
        """The topic's name (looked up on connect when only the id was configured)."""
        return self._topic_name

    @property
    def current_offset(self) -> int:
        """Byte offset of the next record to deliver (a pending `seek_to_end` not yet applied)."""
        return self._offset

    @property
    def committed_offset(self) -> int | None:
        """The offset last committed to the store by this consumer (or loaded from it)."""
        return self._committed

    @property
    def high_water_mark(self) -> int:
        """The topic's end offset as last seen from the server."""
        return self._hwm

    @property
    def lag(self) -> int:
        """`high_water_mark - current_offset`: bytes stored but not delivered yet (>= 0)."""
        return max(0, self._hwm - self._offset)

    @property
    def reconnects(self) -> int:
        """How many times the connection has been re-established."""
        return self._manager.reconnects

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
        self._reset_position()
        self._offset = offset

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
        """Continue at the topic's end; resolved (u64::MAX tail fetch) by the next poll.

        `await seek_to_end_now()` resolves it at once instead.
        """
        self._reset_position()
        self._end_pending = True

    async def seek_to_end_now(self) -> int:
        """Seek to the topic's end, asking the server now; returns the end offset.

        Raises:
            LanceError: The tail fetch failed (after reconnects and retries within
                `request_timeout_s`).
        """
        timeout = self._config.request_timeout_s
        topic_id = self._topic_id

        async def end(conn: Connection) -> int:
            return await operations.end_offset(conn, topic_id, timeout=timeout)

        offset = await self._manager.call(end, timeout=timeout)
        self.seek(offset)
        self._hwm = offset
        return offset

    def _reset_position(self) -> None:
        self._drop_fetches()
        self._tail = b""
        self._end_pending = False
        self._not_before = 0.0
        self._catching_up_since = None
        self._catching_up_replies = 0

    def _drop_fetches(self) -> list[asyncio.Task[_Fetched]]:
        """Forget the fetches in flight (cancelling them): their answers are for old positions."""
        dropped = list(self._fetches)
        self._fetches.clear()
        for task in dropped:
            _forget(task)
        return dropped

    # --- committing -----------------------------------------------------------------------

    async def commit(self) -> int:
        """Commit `current_offset` to the store (and the server); returns the offset.

        The server's CommitOffset is sent only with `server_side_offsets`.

        Raises:
            LanceError: The server's CommitOffset failed (after retries within
                `request_timeout_s`).
            OSError: The offset store could not write.
        """
        self._check_usable()
        if self._end_pending:
            await self.seek_to_end_now()
        offset = await self._save()
        if self._config.server_side_offsets:

            async def commit(conn: Connection) -> None:
                await self._commit_on_server(conn, offset)

            await self._manager.call(commit, timeout=self._config.request_timeout_s)
        self._notify_commit(offset)
        return offset

    async def _save(self) -> int:
        offset = self._offset
        await self._store.save(
            self._config.consumer_name, self._topic_id, offset, topic_name=self._topic_name
        )
        self._committed = offset
        self._last_commit_at = asyncio.get_running_loop().time()
        return offset

    async def _commit_on_server(self, conn: Connection, offset: int) -> None:
        await operations.commit_offset(
            conn,
            self._topic_id,
            self._consumer_id,
            offset,
            timeout=self._config.request_timeout_s,
        )
        self._server_committed = max(offset, self._server_committed or 0)

    def _notify_commit(self, offset: int) -> None:
        if self._on_commit is not None:
            self._on_commit(offset)

    async def _auto_commit(self) -> None:
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
        self._notify_commit(offset)

    async def _collect_server_commit(self, *, wait: bool) -> None:
        task = self._server_commit
        if task is None or not (wait or task.done()):
            return
        self._server_commit = None
        await task

    def _auto_commit_due(self, *, force: bool = False) -> bool:
        interval = self._config.auto_commit_interval_s
        if interval is None or self._end_pending or self._offset == self._committed:
            return False
        return force or asyncio.get_running_loop().time() - self._last_commit_at >= interval

    # --- polling --------------------------------------------------------------------------

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
            ProtocolError: The data at the offset is not a TLV stream (a record claims more
                bytes than an ingest can hold).
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
            await self._collect_server_commit(wait=False)
            if self._auto_commit_due():
                await self._auto_commit()
            return await self._poll_until(loop, deadline)
        finally:
            self._polling = False

    async def _poll_until(
        self, loop: asyncio.AbstractEventLoop, deadline: float
    ) -> PollResult | None:
        fetches = self._fetches
        while not self._closed:
            if not fetches:
                pause = self._not_before - loop.time()
                if pause > 0:
                    remaining = deadline - loop.time()
                    await asyncio.sleep(max(0.0, min(pause, remaining)))
                    if pause >= remaining:
                        return None
                    continue
                self._start_fetch()
            task = fetches[0]
            if not task.done():
                remaining = deadline - loop.time()
                if remaining > 0:
                    await asyncio.wait((task,), timeout=remaining)
                if fetches and fetches[0] is task and not task.done():
                    return None
            if not fetches or fetches[0] is not task:
                continue
            if self._prefetch_after(task):
                await asyncio.sleep(0)
                if not fetches or fetches[0] is not task:
                    continue
            fetches.popleft()
            result = self._settle(task, loop.time())
            if result is not None:
                return result
            if loop.time() >= deadline:
                return None
        return None

    def _prefetch_after(self, task: asyncio.Task[_Fetched]) -> bool:
        """After a full window, queue the fetch of the next one before decoding this one.

        The follow-up starts where the window ends, so it stays valid whatever the decoder
        finds; its size covers the rest of a record already announced in the tail. The caller
        yields to the loop once, which writes its request: the server then reads the next
        window while this one is decoded and handled.
        """
        if (
            not self._config.prefetch
            or len(self._fetches) > 1
            or task.cancelled()
            or task.exception() is not None
        ):
            return False
        fetched = task.result()
        window = fetched.window
        if window is None or len(window.data) < fetched.requested:
            return False
        received = len(window.data)
        size = max(self._config.max_fetch_bytes, self._missing() - received)
        if size > MAX_PAYLOAD_SIZE:
            return False
        self._queue_window_fetch(fetched.position + received, size)
        return True

    def _missing(self) -> int:
        """Bytes still missing of the record that starts the tail (0 while its header is)."""
        tail = self._tail
        if len(tail) < RECORD_HEADER_SIZE:
            return 0
        record_type, length = _RECORD_HEADER.unpack_from(tail)
        header = RECORD_HEADER_SIZE
        if record_type == RecordType.NULL:
            if len(tail) < EXTENDED_HEADER_SIZE:
                return 0
            (length,) = _EXTENDED_LENGTH.unpack_from(tail, 3)
            header = EXTENDED_HEADER_SIZE
        return header + int(length) - len(tail)

    def _window_size(self) -> int:
        """Bytes to ask for: `max_fetch_bytes`, or enough to finish the record in the tail."""
        return max(self._config.max_fetch_bytes, self._missing())

    def _start_fetch(self) -> None:
        if self._end_pending:
            self._fetches.append(asyncio.get_running_loop().create_task(self._fetch_end()))
            return
        size = self._window_size()
        if size > MAX_PAYLOAD_SIZE:
            raise ProtocolError(
                f"the record at offset {self._offset} of topic {self._topic_id} claims "
                f"{size + len(self._tail)} bytes, more than one ingest can carry: the topic "
                "does not hold a TLV stream, or the offset is not a record boundary"
            )
        self._queue_window_fetch(self._offset + len(self._tail), size)

    def _queue_window_fetch(self, position: int, size: int) -> None:
        want_end = self._hwm <= position + size
        coroutine = self._fetch_window(position, size, want_end=want_end)
        self._fetches.append(asyncio.get_running_loop().create_task(coroutine))

    async def _connection(self) -> Connection:
        deadline = asyncio.get_running_loop().time() + self._config.request_timeout_s
        try:
            return await self._manager.get(deadline=deadline)
        except ConnectionError as error:
            raise _ReconnectFailedError(error) from error

    async def _fetch_end(self) -> _Fetched:
        conn = await self._connection()
        end = await operations.end_offset(
            conn, self._topic_id, timeout=self._config.request_timeout_s
        )
        return _Fetched(end, 0, None, end)

    async def _fetch_window(self, position: int, size: int, *, want_end: bool) -> _Fetched:
        """Fetch a window; with `want_end`, also the end offset, requested right after it."""
        conn = await self._connection()
        timeout = self._config.request_timeout_s
        if not want_end:
            window = await operations.fetch(conn, self._topic_id, position, size, timeout=timeout)
            return _Fetched(position, size, window, None)
        end_task = asyncio.get_running_loop().create_task(
            operations.end_offset(conn, self._topic_id, timeout=timeout)
        )
        try:
            window = await operations.fetch(conn, self._topic_id, position, size, timeout=timeout)
        except BaseException:
            _forget(end_task)
            raise
        return _Fetched(position, size, window, await end_task)

    def _settle(self, task: asyncio.Task[_Fetched], now: float) -> PollResult | None:
        """Take a finished fetch: deliver its records, or schedule the retry it calls for."""
        error = task.exception()
        if error is None:
            self._retries = 0
            self._catching_up_since = None
            self._catching_up_replies = 0
            return self._absorb(task.result(), now)
        self._drop_fetches()
        if isinstance(error, _ReconnectFailedError):
            raise error.error
        if isinstance(error, ServerCatchingUpError):
            self._catching_up(error, now)
            return None
        if isinstance(error, LanceError) and error.retryable and self._config.auto_reconnect:
            if isinstance(error, NotLeaderError):
                self._manager.redirect(error.leader_addr)
            _log.info("fetch from offset %d failed, retrying: %s", self._offset, error)
            self._tail = b""
            self._not_before = now + self._manager.reconnect.delay_for_attempt(self._retries)
            self._retries += 1
            return None
        raise error

    def _catching_up(self, error: ServerCatchingUpError, now: float) -> None:
        if self._catching_up_since is None:
            self._catching_up_since = now
        self._catching_up_replies += 1
        self._hwm = error.server_offset
        limit = self._config.catching_up_timeout_s
        if limit is not None and now - self._catching_up_since >= limit:
            self._catching_up_since = None
            self._catching_up_replies = 0
            raise ServerCatchingUpError(
                error.server_offset,
                f"offset {self._offset} of topic {self._topic_id} is still past the server's "
                f"end ({error.server_offset}) after {limit} s of CatchingUp replies: seek "
                "(rewind, seek_to_end or seek) to go on",
            )
        doublings = min(self._catching_up_replies - 1, _MAX_BACKOFF_DOUBLINGS)
        self._not_before = now + self._config.catching_up_backoff_s * 2**doublings

    def _absorb(self, fetched: _Fetched, now: float) -> PollResult | None:
        window = fetched.window
        if window is None:
            self.seek(fetched.position)
            self._hwm = fetched.position
            return None
        data = window.data
        received = len(data)
        hwm = max(self._hwm if fetched.end is None else fetched.end, window.next_offset)
        self._hwm = hwm
        if not received:
            self._not_before = now + self._config.poll_interval_ms / 1000
            return None
        tail = self._tail
        assert fetched.position == self._offset + len(tail)
        buffer = tail + data if tail else bytes(data)
        records, used = decode_stream(buffer)
        start = self._offset
        self._offset = end = start + used
        self._tail = buffer[used:]
        if not records:
            return None
        return PollResult(buffer[:used], records, start, end, hwm, len(records))

    # --- iteration ------------------------------------------------------------------------

    async def batches(self, *, timeout: float | None = None) -> AsyncIterator[PollResult]:
        """Yield every non-empty `PollResult`, waiting as long as needed; ends on `close()`.

        Args:
            timeout: Per-poll timeout (default `config.poll_timeout_s`); it only bounds how
                often auto-commit and `close()` are noticed, the iteration itself never ends.
        """
        while not self._closed:
            result = await self.poll(timeout)
            if result is not None:
                yield result

    async def records(self, *, timeout: float | None = None) -> AsyncIterator[TlvRecord]:
        """Yield every record, one at a time (see `batches`); `async for r in consumer` too."""
        async for batch in self.batches(timeout=timeout):
            for record in batch.records:
                yield record

    def __aiter__(self) -> AsyncIterator[TlvRecord]:
        return self.records()
