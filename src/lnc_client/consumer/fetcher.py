"""The consumer's fetcher: where it reads (topic, offset, carried tail) and the fetches in flight.

Data flow of one poll (`Fetcher.poll_until`):

1. At most one fetch is in flight: a task that sends `Fetch(topic, position, size)` where
   `position = offset + len(tail)` and `size` is `max_fetch_bytes`, grown to fit a record whose
   header is already in the tail (`protocol.records.record_header`). When the last known
   high-water mark could be reached by the window, a tail fetch (`u64::MAX`, PROTOCOL.md §5) is
   pipelined right behind it, so `lag` is measured against the server's real end.
2. The answer is a raw window that may cut records anywhere. `decode_window(tail + window)`
   returns the complete records (a `RecordSequence`: built as they are read) and the bytes
   they use; the rest becomes the new tail, and `offset` advances by exactly the bytes of the
   records delivered.
3. A full window starts the next fetch at once (`prefetch`). An empty window means nothing new:
   the next fetch waits an *adaptive* pause (`_idle_pause`): 0.1 ms after the first empty
   answer, doubling with each further one, capped while records arrived in the last second at
   an eighth of the usual time between them, and at least 0.4 ms (a consumer tailing a busy
   topic sees a record about half a millisecond after it is stored, one tailing 10 records a
   second fetches about 150 times a second, not 800) and at
   `poll_interval_ms` once the topic has been idle longer (an idle consumer costs a few fetches
   a second). A record resets it. CatchingUp backs off `catching_up_backoff_s`,
   doubling, and raises `ServerCatchingUpError` once it has lasted `catching_up_timeout_s`. A
   retryable failure drops the tail and retries from `offset` after the reconnect backoff.

A poll that times out leaves its fetch running; the next poll takes its answer. Seeking drops
the tail and every fetch in flight (their answers are for old positions).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Final, TypeVar

from lnc_client import operations
from lnc_client.config import StandaloneConfig
from lnc_client.connection import Connection
from lnc_client.consumer.result import PollResult
from lnc_client.errors import (
    ConnectionError,
    LanceError,
    NotLeaderError,
    ProtocolError,
    ServerCatchingUpError,
    UndecodableRecordError,
)
from lnc_client.metrics import LatencyHistogram
from lnc_client.protocol.control import FetchResult
from lnc_client.protocol.frame import MAX_PAYLOAD_SIZE
from lnc_client.protocol.records import RecordDialect, decode_window, record_header
from lnc_client.reconnect import ConnectionManager

__all__ = ["Fetcher"]

_log = logging.getLogger(__name__)

_MAX_BACKOFF_DOUBLINGS: Final = 4
_IDLE_FIRST_S: Final = 0.0001
"""Pause after the first empty fetch; it doubles with each further empty fetch in a row."""
_ACTIVE_CAP_S: Final = 0.0004
"""Longest pause between empty fetches while records arrive often (every 3.2 ms or less)."""
_GAP_SHARE: Final = 8
"""While records flow, the pause is capped at this fraction of the usual time between answers
that brought records (at least `_ACTIVE_CAP_S`): a slow topic is not fetched hundreds of
times a second for a record now and then."""
_ACTIVE_WINDOW_S: Final = 1.0
_T = TypeVar("_T")


FETCH_COUNTERS: Final = (
    "records_received",
    "bytes_received",
    "batches_received",
    "fetches",
    "empty_fetches",
    "catching_up_replies",
    "retries",
)
"""The `ConsumerMetrics` fields counted by the fetcher."""


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


def forget(task: asyncio.Task[_T]) -> None:
    """Cancel a task whose result is not wanted (or mark its exception as seen)."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


class Fetcher:
    """The read position of one topic and the fetches that advance it.

    Args:
        config: The consumer's configuration.
        manager: The consumer's connections.

    Attributes:
        topic_id: The topic (0 until resolved from `topic_name`).
        topic_name: The topic's name, when known.
        offset: Byte offset of the next record to deliver.
        hwm: The topic's end offset as last seen from the server.
        end_pending: A `seek_to_end` waits to be resolved by the next fetch.
        stopped: Set when the consumer closes: polls end.
    """

    def __init__(self, config: StandaloneConfig, manager: ConnectionManager) -> None:
        self._config = config
        self._manager = manager
        self.topic_id = config.topic_id
        self.topic_name: str | None = config.topic_name or None
        self.offset = 0
        self.hwm = 0
        self.end_pending = False
        self.stopped = False
        self._tail = b""
        self._fetches: deque[asyncio.Task[_Fetched]] = deque()
        self._not_before = 0.0
        self._empty_in_a_row = 0
        self._last_records_at = float("-inf")
        self._gap_s = 0.0  # moving average of the time between answers that brought records
        self._retries = 0
        self._catching_up_since: float | None = None
        self._catching_up_replies = 0
        self.counts = dict.fromkeys(FETCH_COUNTERS, 0)
        """What the fetches did, by `ConsumerMetrics` field name."""
        self.fetch_latency = LatencyHistogram()

    # --- position -------------------------------------------------------------------------

    def seek(self, offset: int) -> None:
        """Continue at `offset`: drop the tail and every fetch in flight."""
        self._reset()
        self.offset = offset

    def seek_to_end(self) -> None:
        """Continue at the end as it is now: the tail fetch leaves at once (issue 9.4).

        It is sent with the next turn of the event loop, before anything the caller awaits
        after this call, so the end it gets is the end at the call; the next poll (or a
        commit) moves there. Without a running loop (or a connection) it is sent as soon as
        there is one.
        """
        self._reset()
        self.end_pending = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._fetches.append(loop.create_task(self._fetch_end()))

    async def resolve_end(self) -> None:
        """Apply a pending `seek_to_end` now: at the end its tail fetch got, else ask again.

        Raises:
            LanceError: A new tail fetch failed.
        """
        fetches = self._fetches
        if fetches:
            task = fetches[0]
            await asyncio.wait((task,))
            if fetches and fetches[0] is task and not task.cancelled() and not task.exception():
                fetches.popleft()
                self._move_to_end(task.result().position)
                return
        await self.end_now()

    async def end_now(self) -> int:
        """Ask the server for the end now, seek there and return it.

        Raises:
            LanceError: The tail fetch failed (after reconnects and retries).
        """
        timeout = self._config.request_timeout_s
        topic_id = self.topic_id

        async def end(conn: Connection) -> int:
            return await operations.end_offset(conn, topic_id, timeout=timeout)

        offset = await self._manager.call(end, timeout=timeout)
        self._move_to_end(offset)
        return offset

    def _move_to_end(self, offset: int) -> None:
        self.seek(offset)
        self.hwm = offset

    def _reset(self) -> None:
        self.drop_fetches()
        self._tail = b""
        self.end_pending = False
        self._not_before = 0.0
        self._catching_up_since = None
        self._catching_up_replies = 0

    def drop_fetches(self) -> list[asyncio.Task[_Fetched]]:
        """Forget the fetches in flight (cancelling them): their answers are for old positions."""
        dropped = list(self._fetches)
        self._fetches.clear()
        for task in dropped:
            forget(task)
        return dropped

    # --- polling --------------------------------------------------------------------------

    async def poll_until(
        self, loop: asyncio.AbstractEventLoop, deadline: float
    ) -> PollResult | None:
        """Return the next records, or None when none came by `deadline` (loop time)."""
        fetches = self._fetches
        while not self.stopped:
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
        missing = self._missing() - received
        if missing > MAX_PAYLOAD_SIZE:
            return False
        self._queue_window_fetch(
            fetched.position + received, max(self._config.max_fetch_bytes, missing)
        )
        return True

    def _missing(self) -> int:
        """Bytes still missing of the record that starts the tail (0 while its header is)."""
        header = record_header(
            self._tail, extended=self._config.record_dialect is RecordDialect.LNC
        )
        if header is None:
            return 0
        header_size, length = header
        return header_size + length - len(self._tail)

    def _start_fetch(self) -> None:
        if self.end_pending:
            self._fetches.append(asyncio.get_running_loop().create_task(self._fetch_end()))
            return
        missing = self._missing()
        if missing > MAX_PAYLOAD_SIZE:  # a window may be larger (real lance has no window cap)
            raise UndecodableRecordError(
                self.topic_id,
                self.offset,
                f"it claims {missing + len(self._tail)} bytes, more than one ingest can carry (the "
                "topic does not hold a TLV stream there, or the offset is not a record boundary)",
            )
        self._queue_window_fetch(
            self.offset + len(self._tail), max(self._config.max_fetch_bytes, missing)
        )

    def _queue_window_fetch(self, position: int, size: int) -> None:
        want_end = self.hwm <= position + size
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
            conn, self.topic_id, timeout=self._config.request_timeout_s
        )
        return _Fetched(end, 0, None, end)

    async def _fetch_window(self, position: int, size: int, *, want_end: bool) -> _Fetched:
        """Fetch a window; with `want_end`, also the end offset, requested right after it."""
        conn = await self._connection()
        timeout = self._config.request_timeout_s
        topic_id = self.topic_id
        loop = asyncio.get_running_loop()
        started = loop.time()
        if not want_end:
            window = await operations.fetch(conn, topic_id, position, size, timeout=timeout)
            self.fetch_latency.observe(loop.time() - started)
            return _Fetched(position, size, window, None)
        end_task = asyncio.get_running_loop().create_task(
            operations.end_offset(conn, topic_id, timeout=timeout)
        )
        try:
            window = await operations.fetch(conn, topic_id, position, size, timeout=timeout)
        except BaseException:
            forget(end_task)
            raise
        self.fetch_latency.observe(loop.time() - started)
        return _Fetched(position, size, window, await end_task)

    # --- answers --------------------------------------------------------------------------

    def _settle(self, task: asyncio.Task[_Fetched], now: float) -> PollResult | None:
        """Take a finished fetch: deliver its records, or schedule the retry it calls for."""
        error = task.exception()
        if error is None:
            self._retries = 0
            self._catching_up_since = None
            self._catching_up_replies = 0
            return self._absorb(task.result(), now)
        self.drop_fetches()
        if isinstance(error, _ReconnectFailedError):
            raise error.error
        if isinstance(error, ServerCatchingUpError):
            self._catching_up(error, now)
            return None
        if isinstance(error, LanceError) and error.retryable and self._config.auto_reconnect:
            if isinstance(error, NotLeaderError):
                self._manager.redirect(error.leader_addr)
            _log.info("fetch from offset %d failed, retrying: %s", self.offset, error)
            self.counts["retries"] += 1
            self._tail = b""
            self._not_before = now + self._manager.reconnect.delay_for_attempt(self._retries)
            self._retries += 1
            return None
        raise error

    def _catching_up(self, error: ServerCatchingUpError, now: float) -> None:
        if self._catching_up_since is None:
            self._catching_up_since = now
        self._catching_up_replies += 1
        self.counts["catching_up_replies"] += 1
        self.hwm = error.server_offset
        limit = self._config.catching_up_timeout_s
        if limit is not None and now - self._catching_up_since >= limit:
            self._catching_up_since = None
            self._catching_up_replies = 0
            raise ServerCatchingUpError(
                error.server_offset,
                f"offset {self.offset} of topic {self.topic_id} is still past the server's "
                f"end ({error.server_offset}) after {limit} s of CatchingUp replies: seek "
                "(rewind, seek_to_end or seek) to go on",
            )
        doublings = min(self._catching_up_replies - 1, _MAX_BACKOFF_DOUBLINGS)
        self._not_before = now + self._config.catching_up_backoff_s * 2**doublings

    def _absorb(self, fetched: _Fetched, now: float) -> PollResult | None:
        window = fetched.window
        if window is None:
            self._move_to_end(fetched.position)
            return None
        data = window.data
        received = len(data)
        hwm = max(self.hwm if fetched.end is None else fetched.end, window.next_offset)
        self.hwm = hwm
        counts = self.counts
        counts["fetches"] += 1
        if not received:
            counts["empty_fetches"] += 1
            self._not_before = now + self._idle_pause(now)
            return None
        self._records_came(now)
        tail = self._tail
        assert fetched.position == self.offset + len(tail)
        buffer = tail + data if tail else bytes(data)
        try:
            records, used = decode_window(buffer, dialect=self._config.record_dialect)
        except ProtocolError as error:
            self.seek(self.offset)  # drops the tail and any fetch in flight
            raise UndecodableRecordError(self.topic_id, self.offset, str(error)) from error
        start = self.offset
        self.offset = end = start + used
        self._tail = buffer[used:]
        if not records:
            return None
        counts["records_received"] += len(records)
        counts["bytes_received"] += used
        counts["batches_received"] += 1
        return PollResult(buffer[:used], records, start, end, hwm, len(records))

    def _records_came(self, now: float) -> None:
        """An answer brought records: reset the pause, update the usual gap between such answers."""
        self._empty_in_a_row = 0
        # a quiet spell counts as a gap of `_ACTIVE_WINDOW_S`: records now and then keep the
        # pause long, a burst brings it down within a few answers
        since = min(now - self._last_records_at, _ACTIVE_WINDOW_S)
        self._gap_s += (since - self._gap_s) / 4
        self._last_records_at = now

    def _idle_pause(self, now: float) -> float:
        """Seconds to wait after an empty fetch: short while records flow, long when idle."""
        pause = _IDLE_FIRST_S * float(1 << min(self._empty_in_a_row, 16))
        self._empty_in_a_row += 1
        ceiling = self._config.poll_interval_ms / 1000
        if now - self._last_records_at < _ACTIVE_WINDOW_S:
            ceiling = min(ceiling, max(_ACTIVE_CAP_S, self._gap_s / _GAP_SHARE))
        return min(pause, ceiling)
