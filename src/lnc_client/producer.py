"""`Producer`: batching, pipelined, reconnecting ingest with exact per-batch outcomes.

Data flow.

1. **Append** (`send_async`, `send_nowait`, `send`, `send_handle`): the record's TLV bytes
   (`[type u8][length u32 LE][value]`) are appended to its topic's *open batch* (one
   `bytearray`). Nothing per record is allocated besides those bytes: no future, no task, no
   await that suspends unless the buffer is full. The batch id is assigned when the batch opens,
   so `send_async` can return the id its record will travel in.
2. **Seal**: a batch is sealed when it reaches `batch_size` bytes, when its linger timer fires
   (armed once per batch with `loop.call_later(linger_ms)`), when someone awaits it with `send`
   (sealed at the end of the current loop iteration, so concurrent senders still share it),
   or on `flush`/`close`. Sealing makes one payload (optionally one LZ4 envelope record,
   `protocol.records.compress_records`, when that is smaller) and queues the batch.
3. **Send**: queued batches are written with one `Connection.send_ingest` each while fewer than
   `max_pending_acks` are in flight. Batches to resend go first, in batch-id order.
4. **Settle**: the connection calls back once per batch: after its Ack, or with an error. The
   ErrorResponse is attributed exactly by the connection's ack barrier (PROTOCOL.md §2.7: error
   frames carry no batch id). An Ack frees the window slot and the buffer memory and resolves the
   batch's one shared future (created only if someone waits: `send`, a `SendHandle`, `flush`) and
   its callbacks. A non-retryable error fails just that batch, keeping the server's text. A
   retryable error or a lost connection puts the batch back to be resent with the **same batch
   id** after a reconnect (or after a backoff, for a retryable error frame), until its
   `delivery_timeout_s` runs out; with `auto_reconnect=False` it fails instead.

A background *sender* task does only what may wait: reconnecting (backoff, seeds, auth), waiting
until a peer that stopped reading accepts data again, holding sends after Backpressure frames,
and housekeeping (ack timeouts reset the connection; batches past their delivery timeout fail).

Batch ids are the producer's own (1, 2, 3, ... per producer, kept on resends). Its connections
carry nothing but its ingests and its own ListTopics/CreateTopic requests, never an Unsubscribe,
so no Ack can be mistaken for an Unsubscribe's (`Connection.send_ingest` would refuse such an
id with `ValueError`; it cannot happen here).

Delivery: an Ack means the server has the batch durably (fsync). A batch that is resent after a
lost connection or an ack timeout may have been written already: the server does not detect
duplicate batch ids, so those records can appear twice (at-least-once; docs/client.md).
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
import struct
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final, Self, TypeVar

from lnc_client import operations
from lnc_client._lifecycle import AsyncLifecycle
from lnc_client.config import Address, BufferFullPolicy, ProducerConfig
from lnc_client.connection import Connection, IngestCallback, copy_error
from lnc_client.errors import (
    BackpressureError,
    ConnectionError,
    LanceError,
    TimeoutError,
    TopicAlreadyExistsError,
    TopicNotFoundError,
    validate_topic_name,
)
from lnc_client.protocol.frame import MAX_PAYLOAD_SIZE
from lnc_client.protocol.records import (
    RECORD_HEADER_SIZE,
    RecordType,
    TlvRecord,
    compress_records,
    encode_records,
    encode_values,
)
from lnc_client.reconnect import ConnectionManager

__all__ = ["Producer", "ProducerMetrics", "SendAck", "SendCallback", "SendHandle"]

_pack_header = struct.Struct("<BI").pack
_RAW: Final = int(RecordType.RAW_DATA)
_U32_MAX: Final = 0xFFFF_FFFF
_BACKPRESSURE_FIRST_S: Final = 0.005
_BACKPRESSURE_MAX_S: Final = 1.0
_MIN_TICK_S: Final = 0.005
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class SendAck:
    """Where an acknowledged record went.

    Attributes:
        batch_id: The batch (ingest frame) that carried it.
        topic_id: Its topic.
        offset_in_batch: Its position among the batch's records (0-based).
    """

    batch_id: int
    topic_id: int
    offset_in_batch: int


SendCallback = Callable[[SendAck | None, LanceError | None], None]
"""Called once per record: `(SendAck, None)` after the Ack, or `(None, error)`."""


@dataclass(frozen=True, slots=True)
class ProducerMetrics:
    """A snapshot of a producer's counters (`Producer.metrics()`).

    Attributes:
        records_sent: Records in batches written to a connection (resends not counted).
        bytes_sent: Payload bytes of those batches, as sent (compressed when compression won).
        batches_sent: Batches written (resends not counted).
        records_acked: Records acknowledged by the server.
        bytes_acked: Payload bytes acknowledged.
        batches_acked: Batches acknowledged.
        records_failed: Records whose batch failed for good.
        batches_failed: Batches that failed for good.
        retries: Batch resends (after a lost connection, an ack timeout or a retryable error).
        buffered_bytes: Record bytes held (open, queued or in flight), against `buffer_memory`.
        queued_batches: Sealed batches waiting for a window slot or a connection.
        in_flight_batches: Batches sent and not yet settled.
        reconnects: Times the connection was re-established.
        backpressure_frames: Backpressure frames received.
    """

    records_sent: int
    bytes_sent: int
    batches_sent: int
    records_acked: int
    bytes_acked: int
    batches_acked: int
    records_failed: int
    batches_failed: int
    retries: int
    buffered_bytes: int
    queued_batches: int
    in_flight_batches: int
    reconnects: int
    backpressure_frames: int


class _State(Enum):
    NEW = "new"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class _Batch:
    """One batch: open (records appended), then sealed, queued, in flight, settled."""

    __slots__ = (
        "attempts",
        "batch_id",
        "buffer",
        "callbacks",
        "conn",
        "count",
        "deadline",
        "expedited",
        "future",
        "payload",
        "sent_at",
        "size",
        "timer",
        "topic_id",
        "watched",
    )

    def __init__(self, batch_id: int, topic_id: int, deadline: float) -> None:
        self.batch_id = batch_id
        self.topic_id = topic_id
        self.deadline = deadline
        self.buffer = bytearray()
        self.payload = b""
        self.count = 0
        self.size = 0
        self.timer: asyncio.Handle | None = None
        self.expedited = False
        self.future: asyncio.Future[None] | None = None
        self.callbacks: list[tuple[int, SendCallback]] | None = None
        self.watched = False
        self.conn: Connection | None = None
        self.sent_at = 0.0
        self.attempts = 0


def _batch_id_of(batch: _Batch) -> int:
    return batch.batch_id


class SendHandle:
    """The pending outcome of one record: await it for its `SendAck`.

    The records of one batch share one future; the handle adds the record's position.

    Attributes:
        batch_id: The batch the record travels in.
        topic_id: Its topic.
        offset_in_batch: Its position in the batch.
    """

    __slots__ = ("_future", "batch_id", "offset_in_batch", "topic_id")

    def __init__(self, future: asyncio.Future[None], ack: SendAck) -> None:
        self._future = future
        self.batch_id = ack.batch_id
        self.topic_id = ack.topic_id
        self.offset_in_batch = ack.offset_in_batch

    def _ack(self) -> SendAck:
        return SendAck(self.batch_id, self.topic_id, self.offset_in_batch)

    def done(self) -> bool:
        """Whether the record's batch has settled (acknowledged or failed)."""
        return self._future.done()

    def exception(self) -> LanceError | None:
        """The failure, None after an Ack.

        Raises:
            asyncio.InvalidStateError: Not settled yet.
        """
        error = self._future.exception()
        assert error is None or isinstance(error, LanceError)
        return error

    def result(self) -> SendAck:
        """The `SendAck`, or the failure raised.

        Raises:
            asyncio.InvalidStateError: Not settled yet.
            LanceError: The batch failed.
        """
        self._future.result()
        return self._ack()

    async def wait(self, timeout: float | None = None) -> SendAck:
        """Wait at most `timeout` seconds (None: no bound of its own) for the outcome.

        Raises:
            TimeoutError: Not settled in time (the record may still be delivered later).
            LanceError: The batch failed.
        """
        await _wait_settled([self._future], self.batch_id, timeout)
        return self._ack()

    def __await__(self) -> Generator[object, None, SendAck]:
        return self.wait().__await__()


class Producer(AsyncLifecycle):
    """Batching producer with an in-flight window, bounded memory and reconnects.

    `producer = await Producer.connect("host:port", ProducerConfig())`, or
    `async with Producer("host:port", config) as producer:`. See the module docstring for the
    data flow and docs/client.md for the delivery guarantees.

    Args:
        address: The server (`host:port`, `[v6]:port`); `config.seeds` are tried after it.
        config: Batching, window, memory, timeouts, reconnects, compression, auth.
    """

    def __init__(self, address: str | Address, config: ProducerConfig | None = None) -> None:
        self.config = config = config or ProducerConfig()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._manager = ConnectionManager(
            [address, *config.seeds],
            config.connection_options(),
            config.reconnect,
            auto_reconnect=config.auto_reconnect,
            on_backpressure=self._on_backpressure_frame,
        )
        self._state = _State.NEW
        self._accepting = False
        self._batch_size = min(config.batch_size, MAX_PAYLOAD_SIZE)
        self._big_record = MAX_PAYLOAD_SIZE - self._batch_size
        """A record larger than this may not fit in its topic's open batch."""
        self._linger_s = config.linger_ms / 1000
        self._buffer_limit = config.buffer_memory
        self._max_pending = config.max_pending_acks
        self._compression = config.compression
        self._next_batch_id = 0
        self._open: dict[int, _Batch] = {}
        self._retry: list[_Batch] = []
        self._ready: deque[_Batch] = deque()
        self._in_flight: dict[int, _Batch] = {}
        self._buffered = 0
        self._space_waiters: list[asyncio.Future[None]] = []
        self._conn: Connection | None = None
        self._on_done: IngestCallback | None = None
        self._wake = asyncio.Event()
        self._sender_idle = False
        self._sender: asyncio.Task[None] | None = None
        self._close_done: asyncio.Future[None] | None = None
        self._hold_until = 0.0
        self._backpressure_delay = 0.0
        self._fatal: LanceError | None = None
        self._unreported: tuple[int, LanceError] | None = None
        self._unreported_count = 0
        self._topic_ids: dict[str, int] = {}
        self._tick = max(_MIN_TICK_S, min(config.request_timeout_s, config.delivery_timeout_s) / 8)
        self._counts = dict.fromkeys(
            (
                "records_sent",
                "bytes_sent",
                "batches_sent",
                "records_acked",
                "bytes_acked",
                "batches_acked",
                "records_failed",
                "batches_failed",
                "retries",
                "backpressure_frames",
            ),
            0,
        )

    # --- lifecycle ----------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls, address: str | Address, config: ProducerConfig | None = None
    ) -> Producer:
        """Create a producer and connect it.

        Raises:
            ConnectionError: The server could not be reached (auto_reconnect off).
            TimeoutError: Not connected within `connect_timeout_s`.
            AuthenticationError: The server refused the token.
        """
        producer = cls(address, config)
        await producer.start()
        return producer

    @classmethod
    async def connect_for_topic(
        cls,
        address: str | Address,
        topic_name: str,
        config: ProducerConfig | None = None,
        *,
        create: bool = True,
    ) -> tuple[Producer, int]:
        """Connect and resolve (by default also create) a topic; returns (producer, topic_id).

        Raises:
            InvalidTopicNameError: The name breaks the server's rule (nothing is sent).
            TopicNotFoundError: `create=False` and no such topic.
        """
        validate_topic_name(topic_name)
        producer = await cls.connect(address, config)
        try:
            topic_id = await producer.resolve_topic(topic_name, create=create)
        except BaseException:
            await producer.close()
            raise
        return producer, topic_id

    async def start(self) -> Self:
        """Connect and start the sender; called by `connect` and `async with`.

        Raises:
            ConnectionError: The server could not be reached (auto_reconnect off).
            TimeoutError: Not connected within `connect_timeout_s`.
        """
        if self._state is not _State.NEW:
            return self
        loop = self._loop = asyncio.get_running_loop()
        conn = await self._manager.get(deadline=loop.time() + self.config.connect_timeout_s)
        self._install(conn)
        self._state = _State.OPEN
        self._accepting = True
        self._sender = loop.create_task(self._run_sender(), name="lnc-producer-sender")
        return self

    async def close(self, *, timeout: float | None = None) -> None:
        """Stop accepting records, drain for at most `timeout` seconds, then fail the rest.

        Args:
            timeout: Bound on the drain (default: `request_timeout_s`).

        A `close()` while another one is in progress waits until that one has finished (the
        first caller gets its errors); once closed, `close()` returns at once.

        Raises:
            TimeoutError: Batches were still un-acknowledged at the bound (they fail too).
            LanceError: A batch failed since the last `flush` (as `flush` raises it).
        """
        if self._close_done is not None:
            await asyncio.shield(self._close_done)
            return
        self._close_done = asyncio.get_running_loop().create_future()
        try:
            await self._close(timeout)
        finally:
            self._close_done.set_result(None)

    async def _close(self, timeout: float | None) -> None:
        if self._state is _State.NEW:
            self._state = _State.CLOSED
            await self._manager.close()
            return
        self._state = _State.CLOSING
        self._accepting = False
        error: LanceError | None = None
        try:
            await self.flush(timeout=self.config.request_timeout_s if timeout is None else timeout)
        except LanceError as failure:
            error = failure
        finally:
            self._state = _State.CLOSED
            self._fail_everything(ConnectionError("the producer closed before the batch was acked"))
            await self._stop_sender()
            await self._manager.close()
        if error is not None:
            raise error

    async def _stop_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is None:
            return
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)

    @property
    def closed(self) -> bool:
        """Whether `close()` has been called."""
        return self._state is _State.CLOSING or self._state is _State.CLOSED

    # --- topics by name -----------------------------------------------------------------------

    async def resolve_topic(self, name: str, *, create: bool = False) -> int:
        """Return the id of the topic `name` (cached), optionally creating it.

        The cache entry is dropped when the server answers a batch with "Unknown topic".

        Raises:
            InvalidTopicNameError: The name breaks the server's rule (nothing is sent).
            TopicNotFoundError: No such topic and `create` is False.
        """
        cached = self._topic_ids.get(name)
        if cached is not None:
            return cached
        validate_topic_name(name)
        topics = await self._manager.call(operations.list_topics)
        topic_id = next((topic.id for topic in topics if topic.name == name), None)
        if topic_id is None and create:
            topic_id = await self._create_topic(name)
        if topic_id is None:
            raise TopicNotFoundError(name)
        self._topic_ids[name] = topic_id
        return topic_id

    async def _create_topic(self, name: str) -> int | None:
        try:
            created = await self._manager.call(lambda conn: operations.create_topic(conn, name))
        except TopicAlreadyExistsError:
            topics = await self._manager.call(operations.list_topics)
            return next((topic.id for topic in topics if topic.name == name), None)
        return created.id

    async def _topic_of(self, topic: int | str | None, topic_id: int | None) -> int:
        if topic is not None and topic_id is not None and topic != topic_id:
            raise ValueError("give the topic once: positionally or as topic_id=")
        chosen = topic_id if topic_id is not None else topic
        if chosen is None:
            raise ValueError("a topic (id or name) is required")
        if isinstance(chosen, str):
            return await self.resolve_topic(chosen)
        return chosen

    def _cached_topic(self, topic: int | str) -> int:
        if type(topic) is int:
            return topic
        if isinstance(topic, str):
            cached = self._topic_ids.get(topic)
            if cached is not None:
                return cached
            raise ValueError(f"topic {topic!r} is not resolved yet: await resolve_topic() first")
        raise TypeError(f"a topic is an int id or a str name, not {type(topic).__name__}")

    # --- sending ------------------------------------------------------------------------------

    async def send_async(
        self,
        topic: int | str | None = None,
        data: bytes = b"",
        *,
        topic_id: int | None = None,
        record_type: int = _RAW,
    ) -> int:
        """Append one record to its topic's batch; return without waiting for the Ack.

        Suspends only when `buffer_memory` is full (BLOCK policy, at most `max_block_s`).
        Failures surface in `flush()`/`close()`.

        Args:
            topic: Topic id or name (names are resolved once and cached).
            data: The record value.
            topic_id: The topic id, as a keyword (lnc-client 0.2.9 style).
            record_type: TLV type byte (0x00-0xFE; default RAW_DATA 0x01).

        Returns:
            The id of the batch the record travels in.

        Raises:
            BackpressureError: The buffer stayed full (or is full under the RAISE policy).
            ConnectionError: The producer is closed, or lost its connection for good.
        """
        chosen = topic_id if topic is None else (topic if topic_id is None else None)
        if type(chosen) is not int:
            chosen = await self._topic_of(topic, topic_id)
        size = len(data) + RECORD_HEADER_SIZE
        if self._buffered + size > self._buffer_limit:
            await self._reserve(size)
        return self._append(chosen, data, size, record_type).batch_id

    def send_nowait(
        self,
        topic: int | str,
        data: bytes,
        *,
        record_type: int = _RAW,
        callback: SendCallback | None = None,
    ) -> int:
        """Append one record without ever suspending; `callback` gets its outcome.

        Args:
            topic: Topic id, or a name already resolved (`resolve_topic` or an earlier send).
            data: The record value.
            record_type: TLV type byte.
            callback: Called once with `(SendAck, None)` after the Ack or `(None, error)`.

        Returns:
            The id of the batch the record travels in.

        Raises:
            BackpressureError: `buffer_memory` is full (whatever the policy).
            ValueError: A topic name that is not resolved yet.
        """
        chosen = self._cached_topic(topic)
        size = len(data) + RECORD_HEADER_SIZE
        if self._buffered and self._buffered + size > self._buffer_limit:
            self._raise_if_unusable()
            raise BackpressureError(f"buffer_memory ({self._buffer_limit} bytes) is full")
        batch = self._append(chosen, data, size, record_type)
        if callback is not None:
            batch.watched = True
            if batch.callbacks is None:
                batch.callbacks = []
            batch.callbacks.append((batch.count - 1, callback))
        return batch.batch_id

    async def send_handle(
        self,
        topic: int | str | None = None,
        data: bytes = b"",
        *,
        topic_id: int | None = None,
        record_type: int = _RAW,
    ) -> SendHandle:
        """Append one record and return a handle to await its `SendAck` (or its error).

        Raises:
            BackpressureError: The buffer stayed full.
            ConnectionError: The producer is closed.
        """
        batch = await self._append_watched(topic, topic_id, data, record_type)
        return SendHandle(
            self._waiter(batch), SendAck(batch.batch_id, batch.topic_id, batch.count - 1)
        )

    async def send(
        self,
        topic: int | str | None = None,
        data: bytes = b"",
        *,
        topic_id: int | None = None,
        record_type: int = _RAW,
        timeout: float | None = None,
    ) -> int:
        """Send one record and wait for the server's Ack; return its batch id.

        The record's batch is sealed at the end of the current event-loop iteration (no
        linger), so records sent concurrently by other tasks still share the frame.

        Args:
            topic: Topic id or name.
            data: The record value.
            topic_id: The topic id, as a keyword.
            record_type: TLV type byte.
            timeout: Bound on the wait (default `delivery_timeout_s`).

        Raises:
            TimeoutError: No Ack in time (the record may still be delivered later).
            LanceError: The batch failed (server text kept in `server_text`).
        """
        batch = await self._append_watched(topic, topic_id, data, record_type)
        future = self._waiter(batch)
        self._expedite(batch)
        await self._await_batches([future], batch.batch_id, timeout)
        return batch.batch_id

    async def send_batch(
        self,
        topic: int | str | None = None,
        records: Sequence[bytes] | Sequence[TlvRecord] | None = None,
        *,
        topic_id: int | None = None,
        record_type: int = _RAW,
        timeout: float | None = None,
    ) -> int:
        """Send many records as one batch (frame) and wait for the Ack; return its batch id.

        `bytes` values are encoded in one pass (`encode_values`) with `record_type`;
        `TlvRecord`s keep their own types. A batch larger than the 16 MiB frame limit is split
        into several frames (the id of the last one is returned).

        Raises:
            TimeoutError: No Ack in time.
            LanceError: A batch failed.
        """
        batches = await self._enqueue_records(topic, records, topic_id, record_type)
        futures = [self._waiter(batch) for batch in batches]
        for batch in batches:
            batch.watched = True
        await self._await_batches(futures, batches[-1].batch_id, timeout)
        return batches[-1].batch_id

    async def send_batch_async(
        self,
        topic: int | str | None = None,
        records: Sequence[bytes] | Sequence[TlvRecord] | None = None,
        *,
        topic_id: int | None = None,
        record_type: int = _RAW,
    ) -> int:
        """Queue many records as one batch without waiting for the Ack; return its batch id.

        Failures surface in `flush()`/`close()`. Suspends only on a full buffer.
        """
        batches = await self._enqueue_records(topic, records, topic_id, record_type)
        return batches[-1].batch_id

    async def flush(self, timeout: float | None = None) -> None:
        """Send everything buffered and wait until each of those batches has settled.

        Args:
            timeout: Bound on the wait (default `delivery_timeout_s`).

        Raises:
            TimeoutError: Some batches were not settled in time (they stay pending).
            LanceError: A batch it waited for failed, or one that nobody watched failed since
                the last flush; the first such error (lowest batch id) is raised and a note
                says how many batches failed.
        """
        self._seal_all()
        pending = [*self._retry, *self._ready, *self._in_flight.values()]
        futures = [self._waiter(batch) for batch in pending]
        limit = self.config.delivery_timeout_s if timeout is None else timeout
        if futures:
            _, not_done = await asyncio.wait(futures, timeout=limit)
            if not_done:
                raise TimeoutError(
                    f"{len(not_done)} of {len(futures)} batches were not settled within {limit} s"
                )
        failures = {
            batch.batch_id: error
            for batch, future in zip(pending, futures, strict=True)
            if (error := future.exception()) is not None and isinstance(error, LanceError)
        }
        count = self._unreported_count
        if self._unreported is not None:
            failures.setdefault(*self._unreported)
            self._unreported, self._unreported_count = None, 0
        if failures:
            first = min(failures)
            error = copy_error(failures[first])  # the original is shared with the waiters
            error.add_note(
                f"{max(len(failures), count)} batch(es) failed; batch {first} failed first"
            )
            raise error

    # --- internals: appending and sealing -------------------------------------------------------

    def _append(self, topic_id: int, data: bytes, size: int, record_type: int) -> _Batch:
        """Append one record of `size` TLV bytes (`len(data) + 5`) to its topic's batch."""
        if not self._accepting:
            self._raise_if_unusable()
        if record_type == _RAW:
            header = _pack_header(_RAW, size - RECORD_HEADER_SIZE)
        elif isinstance(record_type, int) and 0 <= record_type < 0xFF:
            header = _pack_header(record_type, size - RECORD_HEADER_SIZE)
        else:
            raise ValueError(f"record_type must be 0x00-0xFE, not {record_type!r}")
        batch = self._open.get(topic_id)
        if batch is None:
            batch = self._open_batch(topic_id, size)
        elif size > self._big_record and len(batch.buffer) + size > MAX_PAYLOAD_SIZE:
            self._seal(batch)
            batch = self._open_batch(topic_id, size)
        buffer = batch.buffer
        buffer += header
        buffer += data
        batch.count += 1
        self._buffered += size
        if len(buffer) >= self._batch_size:
            self._seal(batch)
        return batch

    async def _append_watched(
        self, topic: int | str | None, topic_id: int | None, data: bytes, record_type: int
    ) -> _Batch:
        """Resolve the topic, wait for buffer room, append; the batch's outcome is watched."""
        chosen = await self._topic_of(topic, topic_id)
        size = len(data) + RECORD_HEADER_SIZE
        if self._buffered + size > self._buffer_limit:
            await self._reserve(size)
        batch = self._append(chosen, data, size, record_type)
        batch.watched = True
        return batch

    def _new_batch(self, topic_id: int) -> _Batch:
        if type(topic_id) is not int or not 0 <= topic_id <= _U32_MAX:
            raise ValueError(f"a topic id is an int in 0..2**32-1, not {topic_id!r}")
        assert self._loop is not None
        self._next_batch_id += 1
        return _Batch(
            self._next_batch_id, topic_id, self._loop.time() + self.config.delivery_timeout_s
        )

    def _open_batch(self, topic_id: int, first_record: int) -> _Batch:
        if first_record > MAX_PAYLOAD_SIZE:
            raise ValueError(f"a record of {first_record} bytes exceeds the 16 MiB frame limit")
        batch = self._new_batch(topic_id)
        assert self._loop is not None
        batch.timer = self._loop.call_later(self._linger_s, self._linger_expired, batch)
        self._open[topic_id] = batch
        return batch

    def _linger_expired(self, batch: _Batch) -> None:
        if self._open.get(batch.topic_id) is batch:
            self._seal(batch)

    def _expedite(self, batch: _Batch) -> None:
        if batch.expedited or self._open.get(batch.topic_id) is not batch:
            return
        batch.expedited = True
        assert self._loop is not None
        assert batch.timer is not None
        batch.timer.cancel()
        batch.timer = self._loop.call_soon(self._linger_expired, batch)

    def _seal(self, batch: _Batch) -> None:
        if self._open.get(batch.topic_id) is batch:
            del self._open[batch.topic_id]
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        payload = bytes(batch.buffer)
        batch.buffer = bytearray()
        self._queue(batch, payload)

    def _queue(self, batch: _Batch, payload: bytes) -> None:
        batch.size = len(payload)
        if self._compression:
            compressed = compress_records(payload)
            if len(compressed) < len(payload):
                payload = compressed
        batch.payload = payload
        self._ready.append(batch)
        self._pump()

    def _seal_all(self) -> None:
        for batch in list(self._open.values()):
            self._seal(batch)

    async def _enqueue_records(
        self,
        topic: int | str | None,
        records: Sequence[bytes] | Sequence[TlvRecord] | None,
        topic_id: int | None,
        record_type: int,
    ) -> list[_Batch]:
        chosen = await self._topic_of(topic, topic_id)
        if not records:
            raise ValueError("send_batch needs at least one record")
        batches = []
        for count, payload in _encode_chunks(records, record_type):
            if self._buffered + len(payload) > self._buffer_limit:
                await self._reserve(len(payload))
            if not self._accepting:
                self._raise_if_unusable()
            open_batch = self._open.get(chosen)
            if open_batch is not None:
                self._seal(open_batch)
            batch = self._new_batch(chosen)
            batch.count = count
            self._buffered += len(payload)
            batches.append(batch)
            self._queue(batch, payload)
        return batches

    # --- internals: memory ------------------------------------------------------------------------

    async def _reserve(self, size: int) -> None:
        """Wait until `size` more bytes fit in `buffer_memory` (or raise)."""
        self._raise_if_unusable()
        if size > MAX_PAYLOAD_SIZE:
            raise ValueError(f"a record of {size} bytes exceeds the 16 MiB frame limit")
        if self.config.buffer_full is BufferFullPolicy.RAISE:
            if self._buffered and self._buffered + size > self._buffer_limit:
                raise BackpressureError(f"buffer_memory ({self._buffer_limit} bytes) is full")
            return
        assert self._loop is not None
        deadline = self._loop.time() + self.config.max_block_s
        while self._buffered and self._buffered + size > self._buffer_limit:
            self._seal_all()
            waiter = self._loop.create_future()
            self._space_waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except builtins.TimeoutError:
                raise BackpressureError(
                    f"buffer_memory ({self._buffer_limit} bytes) stayed full for "
                    f"{self.config.max_block_s} s"
                ) from None
            finally:
                waiter.cancel()
            self._raise_if_unusable()

    def _release(self, batch: _Batch) -> None:
        self._buffered -= batch.size
        if self._space_waiters:
            waiters, self._space_waiters = self._space_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _raise_if_unusable(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._state is _State.NEW:
            raise ConnectionError("the producer is not started: use Producer.connect()")
        if self._state is not _State.OPEN:
            raise ConnectionError("the producer is closed")

    # --- internals: sending -----------------------------------------------------------------------

    def _install(self, conn: Connection) -> None:
        in_flight = self._in_flight

        def on_done(batch_id: int, error: LanceError | None) -> None:
            batch = in_flight.get(batch_id)
            if batch is None or batch.conn is not conn:
                return
            del in_flight[batch_id]
            if error is None:
                self._acked(batch)
            else:
                self._errored(batch, error)

        self._conn = conn
        self._on_done = on_done

    def _pump(self) -> None:
        """Send queued batches while the window has room; hand waiting work to the sender."""
        conn = self._conn
        if conn is None or not conn.is_open or not conn.writable or self._hold_until:
            self._wake.set()
            return
        assert self._loop is not None
        assert self._on_done is not None
        in_flight, limit, counts = self._in_flight, self._max_pending, self._counts
        now = self._loop.time()
        while (self._retry or self._ready) and len(in_flight) < limit:
            batch = self._retry.pop(0) if self._retry else self._ready.popleft()
            if batch.deadline <= now:
                self._fail(batch, _delivery_timeout(batch, self.config.delivery_timeout_s))
                continue
            batch.conn = conn
            batch.sent_at = now
            in_flight[batch.batch_id] = batch
            try:
                conn.send_ingest(
                    batch.topic_id,
                    batch.payload,
                    batch_id=batch.batch_id,
                    record_count=batch.count,
                    on_done=self._on_done,
                )
            except ConnectionError:
                del in_flight[batch.batch_id]
                bisect.insort(self._retry, batch, key=_batch_id_of)
                self._wake.set()
                return
            if self._sender_idle:
                self._wake.set()  # start the ack-timeout housekeeping
            if not batch.attempts:
                counts["records_sent"] += batch.count
                counts["bytes_sent"] += len(batch.payload)
                counts["batches_sent"] += 1
            if not conn.writable:
                self._wake.set()
                return

    def _acked(self, batch: _Batch) -> None:
        self._backpressure_delay = 0.0
        self._release(batch)
        counts = self._counts
        counts["records_acked"] += batch.count
        counts["bytes_acked"] += len(batch.payload)
        counts["batches_acked"] += 1
        future = batch.future
        if future is not None and not future.done():
            future.set_result(None)
        if batch.callbacks:
            for offset, callback in batch.callbacks:
                self._call_back(callback, SendAck(batch.batch_id, batch.topic_id, offset), None)
        self._pump()

    def _errored(self, batch: _Batch, error: LanceError) -> None:
        if isinstance(error, TopicNotFoundError):
            self._topic_ids = {n: i for n, i in self._topic_ids.items() if i != batch.topic_id}
        assert self._loop is not None
        if (
            error.retryable
            and self.config.auto_reconnect
            and self._state is not _State.CLOSED
            and self._loop.time() < batch.deadline
        ):
            batch.attempts += 1
            self._counts["retries"] += 1
            bisect.insort(self._retry, batch, key=_batch_id_of)
            if batch.conn is not None and batch.conn.is_open:
                self._hold(self.config.reconnect.delay_for_attempt(batch.attempts - 1))
            self._wake.set()
            return
        self._fail(batch, error)
        self._pump()

    def _fail(self, batch: _Batch, error: LanceError) -> None:
        self._release(batch)
        self._counts["records_failed"] += batch.count
        self._counts["batches_failed"] += 1
        future = batch.future
        if future is not None and not future.done():
            future.set_exception(error)
            future.exception()  # retrieved here: flush and the waiters read it explicitly
        if batch.callbacks:
            for _, callback in batch.callbacks:
                self._call_back(callback, None, error)
        if not batch.watched:
            self._unreported_count += 1
            if self._unreported is None:
                self._unreported = (batch.batch_id, error)

    def _fail_everything(self, error: LanceError) -> None:
        self._accepting = False
        batches = [*self._open.values(), *self._retry, *self._ready, *self._in_flight.values()]
        for batch in self._open.values():
            batch.size = len(batch.buffer)
            if batch.timer is not None:
                batch.timer.cancel()
        self._open.clear()
        self._retry, self._ready = [], deque()
        self._in_flight.clear()
        for batch in sorted(batches, key=_batch_id_of):
            self._fail(batch, error)
        for waiter in self._space_waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _call_back(
        self, callback: SendCallback, ack: SendAck | None, error: LanceError | None
    ) -> None:
        try:
            callback(ack, error)
        except Exception as exc:  # noqa: BLE001 - one failing callback must not stop the others
            assert self._loop is not None
            self._loop.call_exception_handler(
                {"message": "exception in a Producer send callback", "exception": exc}
            )

    def _waiter(self, batch: _Batch) -> asyncio.Future[None]:
        if batch.future is None:
            assert self._loop is not None
            batch.future = self._loop.create_future()
        return batch.future

    async def _await_batches(
        self, futures: list[asyncio.Future[None]], batch_id: int, timeout: float | None
    ) -> None:
        limit = self.config.delivery_timeout_s if timeout is None else timeout
        await _wait_settled(futures, batch_id, limit)

    # --- internals: backpressure, reconnects, housekeeping ----------------------------------------

    def _on_backpressure_frame(self) -> None:
        self._counts["backpressure_frames"] += 1
        delay = self._backpressure_delay
        self._backpressure_delay = min(
            _BACKPRESSURE_MAX_S, delay * 2 if delay else _BACKPRESSURE_FIRST_S
        )
        self._hold(self._backpressure_delay)

    def _hold(self, seconds: float) -> None:
        assert self._loop is not None
        self._hold_until = max(self._hold_until, self._loop.time() + seconds)
        self._wake.set()

    async def _run_sender(self) -> None:
        wake = self._wake
        try:
            while True:
                if not wake.is_set():
                    busy = self._retry or self._ready or self._in_flight
                    self._sender_idle = not busy
                    try:
                        async with asyncio.timeout(self._tick if busy else None):
                            await wake.wait()
                    except builtins.TimeoutError:
                        pass
                    self._sender_idle = False
                wake.clear()
                self._housekeeping()
                try:
                    await self._advance()
                except LanceError as error:
                    self._sender_failed(error)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._fatal = ConnectionError(f"the producer's sender failed: {error!r}")
            self._fail_everything(self._fatal)
            raise

    async def _advance(self) -> None:
        if not (self._retry or self._ready):
            return
        assert self._loop is not None
        conn = self._conn
        if conn is None or not conn.is_open:
            queued = [*self._retry, *self._ready]
            conn = await self._manager.get(deadline=min(b.deadline for b in queued))
            self._install(conn)
        hold = self._hold_until - self._loop.time()
        if hold > 0:
            await asyncio.sleep(hold)
        self._hold_until = 0.0
        if not conn.writable:
            try:
                await conn.wait_writable(timeout=self.config.request_timeout_s)
            except TimeoutError as error:
                conn.abort(error)
                self._wake.set()
                return
        self._pump()

    def _sender_failed(self, error: LanceError) -> None:
        if error.retryable and self.config.auto_reconnect:
            self._wake.set()
            return
        self._fatal = error
        self._fail_everything(error)

    def _housekeeping(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        if self._in_flight:
            oldest = next(iter(self._in_flight.values()))
            waited = now - oldest.sent_at
            if waited >= self.config.request_timeout_s and oldest.conn is not None:
                oldest.conn.abort(
                    TimeoutError(
                        f"no Ack for batch {oldest.batch_id} within "
                        f"{self.config.request_timeout_s} s"
                    )
                )
        for queue in (self._retry, self._ready):
            if any(batch.deadline <= now for batch in queue):
                expired = [batch for batch in queue if batch.deadline <= now]
                kept = [batch for batch in queue if batch.deadline > now]
                if queue is self._retry:
                    self._retry = kept
                else:
                    self._ready = deque(kept)
                for batch in expired:
                    self._fail(batch, _delivery_timeout(batch, self.config.delivery_timeout_s))

    # --- observability ----------------------------------------------------------------------------

    def metrics(self) -> ProducerMetrics:
        """Return a snapshot of the counters."""
        return ProducerMetrics(
            **self._counts,
            buffered_bytes=self._buffered,
            queued_batches=len(self._retry) + len(self._ready),
            in_flight_batches=len(self._in_flight),
            reconnects=self._manager.reconnects,
        )


async def _wait_settled(
    futures: list[asyncio.Future[None]], batch_id: int, timeout: float | None
) -> None:
    """Wait for shared batch futures without cancelling them; raise a batch's own error.

    A batch's error object is shared by all its waiters, so each waiter raises its own copy.
    """
    try:
        async with asyncio.timeout(timeout):
            for future in futures:
                await asyncio.shield(future)
    except LanceError as error:
        raise copy_error(error) from None  # the batch failed (also with a TimeoutError)
    except builtins.TimeoutError:
        raise TimeoutError(
            f"batch {batch_id} was not acknowledged within {timeout} s (it may still be delivered)"
        ) from None


def _delivery_timeout(batch: _Batch, seconds: float) -> TimeoutError:
    return TimeoutError(f"batch {batch.batch_id} was not acknowledged within {seconds} s")


def _encode_chunks(
    records: Sequence[bytes] | Sequence[TlvRecord], record_type: int
) -> list[tuple[int, bytes]]:
    """Encode records into TLV payloads of at most one frame each: [(record count, payload)]."""
    if isinstance(records[0], TlvRecord):
        typed = [r for r in records if isinstance(r, TlvRecord)]
        if len(typed) != len(records):
            raise TypeError("send_batch takes all bytes or all TlvRecord values")
        return _split(typed, lambda part: encode_records(part), lambda r: r.total_size)
    values: Sequence[bytes] = records  # type: ignore[assignment]
    if not 0 <= record_type < 0xFF:
        raise ValueError(f"record_type must be 0x00-0xFE, not {record_type!r}")
    payload = encode_values(values, record_type)
    if len(payload) <= MAX_PAYLOAD_SIZE:
        return [(len(values), payload)]
    return _split(
        values, lambda part: encode_values(part, record_type), lambda v: len(v) + RECORD_HEADER_SIZE
    )


def _split(
    records: Sequence[R],
    encode: Callable[[Sequence[R]], bytes],
    size_of: Callable[[R], int],
) -> list[tuple[int, bytes]]:
    chunks: list[tuple[int, bytes]] = []
    start = total = 0
    for index, record in enumerate(records):
        size = size_of(record)
        if size > MAX_PAYLOAD_SIZE:
            raise ValueError(f"a record of {size} bytes exceeds the 16 MiB frame limit")
        if total + size > MAX_PAYLOAD_SIZE:
            chunks.append((index - start, encode(records[start:index])))
            start, total = index, 0
        total += size
    chunks.append((len(records) - start, encode(records[start:])))
    return chunks
