"""The public `Producer`: lifecycle, the send calls and `flush`, over accumulator and window.

A send resolves its topic (`TopicCache`), waits for buffer room only when `buffer_memory` is
full (`Accumulator.reserve`), and appends to the topic's open batch (`Accumulator.append`).
Sealed batches go to the `Window`, which sends, settles and resends them. `flush` seals
everything and waits for the window's batches; `close` flushes, fails the rest and stops the
window. The package docstring describes the whole data flow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Self

from lnc_client._lifecycle import AsyncLifecycle
from lnc_client.config import Addresses, ProducerConfig, address_list
from lnc_client.discovery import ClusterClient
from lnc_client.errors import (
    BackpressureError,
    ConnectionError,
    LanceError,
    validate_topic_name,
)
from lnc_client.pool import ConnectionPool
from lnc_client.producer.accumulator import RAW, Accumulator
from lnc_client.producer.batch import (
    Batch,
    ProducerMetrics,
    ProducerState,
    RecordValue,
    SendAck,
    SendCallback,
    SendHandle,
    State,
    settle_batches,
    wait_settled,
)
from lnc_client.producer.window import Window
from lnc_client.protocol.records import RECORD_HEADER_SIZE, TlvRecord, as_record_value
from lnc_client.reconnect import ConnectionWatch

__all__ = ["Producer"]


class Producer(AsyncLifecycle, ConnectionWatch):
    """Batching producer with an in-flight window, bounded memory and reconnects.

    `producer = await Producer.connect("host:port", ProducerConfig())`, or
    `async with Producer("host:port", config) as producer:`. See the package docstring for the
    data flow and docs/client.md for the delivery guarantees.

    Args:
        address: `host:port`, `[v6]:port`, a bare host, or a list of them (seeds, tried in
            turn before `config.seeds`).
        config: Batching, window, memory, timeouts, reconnects, compression, auth.
        pool: Borrow the connection from this `ConnectionPool` (or `ClusterClient`, whose
            discovery then ranks the seeds) and give it back on close.
    """

    def __init__(
        self,
        address: Addresses,
        config: ProducerConfig | None = None,
        *,
        pool: ConnectionPool | ClusterClient | None = None,
    ) -> None:
        self.config = config = config or ProducerConfig()
        self._shared = ProducerState()
        self._accumulator = Accumulator(config, self._shared, self._sealed)
        self._window = Window(
            [*address_list(address), *config.seeds],
            config,
            self._shared,
            self._accumulator,
            pool=pool,
        )
        self._topics = self._window.topics
        self._manager = self._window.manager
        self._close_done: asyncio.Future[None] | None = None

    def _sealed(self, batch: Batch) -> None:
        self._window.enqueue(batch)

    # --- lifecycle ----------------------------------------------------------------------------

    @classmethod
    async def connect(cls, address: Addresses, config: ProducerConfig | None = None) -> Producer:
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
        address: Addresses,
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
        shared = self._shared
        if shared.state is not State.NEW:
            return self
        shared.loop = asyncio.get_running_loop()
        await self._window.start()
        shared.state = State.OPEN
        shared.accepting = True
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
        shared = self._shared
        if shared.state is State.NEW:
            shared.state = State.CLOSED
            await self._window.manager.close()
            return
        shared.state = State.CLOSING
        shared.accepting = False
        error: LanceError | None = None
        try:
            await self.flush(timeout=self.config.request_timeout_s if timeout is None else timeout)
        except LanceError as failure:
            error = failure
        finally:
            shared.state = State.CLOSED
            self._window.fail_everything(
                ConnectionError("the producer closed before the batch was acked")
            )
            await self._window.stop()
        if error is not None:
            raise error

    @property
    def closed(self) -> bool:
        """Whether `close()` has been called."""
        return self._shared.state in (State.CLOSING, State.CLOSED)

    # --- topics by name -----------------------------------------------------------------------

    async def resolve_topic(self, name: str, *, create: bool = False) -> int:
        """Return the id of the topic `name` (cached), optionally creating it.

        The cache entry is dropped when the server answers a batch with "Unknown topic".

        Raises:
            InvalidTopicNameError: The name breaks the server's rule (nothing is sent).
            TopicNotFoundError: No such topic and `create` is False.
        """
        return await self._topics.resolve(name, create=create)

    # --- sending ------------------------------------------------------------------------------

    async def send_async(
        self,
        topic: int | str | None = None,
        data: RecordValue = b"",
        *,
        topic_id: int | None = None,
        record_type: int = RAW,
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
        if type(data) is not bytes:
            data = as_record_value(data)
        chosen = topic_id if topic is None else (topic if topic_id is None else None)
        if type(chosen) is not int:
            chosen = await self._topics.topic_of(topic, topic_id)
        accumulator = self._accumulator
        size = len(data) + RECORD_HEADER_SIZE
        if accumulator.buffered + size > accumulator.limit:
            await accumulator.reserve(size)
        return accumulator.append(chosen, data, size, record_type).batch_id

    def send_nowait(
        self,
        topic: int | str | None = None,
        data: RecordValue = b"",
        *,
        topic_id: int | None = None,
        record_type: int = RAW,
        callback: SendCallback | None = None,
    ) -> int:
        """Append one record without ever suspending; `callback` gets its outcome.

        Args:
            topic: Topic id, or a name already resolved (`resolve_topic` or an earlier send).
            data: The record value.
            topic_id: The topic id, as a keyword (as every send method takes it).
            record_type: TLV type byte.
            callback: Called once with `(SendAck, None)` after the Ack or `(None, error)`.

        Returns:
            The id of the batch the record travels in.

        Raises:
            BackpressureError: `buffer_memory` is full (whatever the policy).
            ValueError: A topic name that is not resolved yet.
        """
        if type(data) is not bytes:
            data = as_record_value(data)
        chosen = self._topics.cached(topic, topic_id)
        accumulator = self._accumulator
        size = len(data) + RECORD_HEADER_SIZE
        if accumulator.buffered and accumulator.buffered + size > accumulator.limit:
            self._shared.raise_if_unusable()
            raise BackpressureError(f"buffer_memory ({accumulator.limit} bytes) is full")
        batch = accumulator.append(chosen, data, size, record_type)
        if callback is not None:
            batch.add_callback(callback)
        return batch.batch_id

    async def send_handle(
        self,
        topic: int | str | None = None,
        data: RecordValue = b"",
        *,
        topic_id: int | None = None,
        record_type: int = RAW,
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
        data: RecordValue = b"",
        *,
        topic_id: int | None = None,
        record_type: int = RAW,
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
        self._accumulator.expedite(batch)
        await self._await_batches([future], batch.batch_id, timeout)
        return batch.batch_id

    async def send_batch(
        self,
        topic: int | str | None = None,
        records: Sequence[bytes] | Sequence[TlvRecord] | None = None,
        *,
        topic_id: int | None = None,
        record_type: int = RAW,
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
        record_type: int = RAW,
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
        self._accumulator.seal_all()
        window = self._window
        limit = self.config.delivery_timeout_s if timeout is None else timeout
        await settle_batches(
            window.pending(), self._shared.running(), limit, window.take_unreported
        )

    # --- internals ----------------------------------------------------------------------------

    async def _append_watched(
        self, topic: int | str | None, topic_id: int | None, data: RecordValue, record_type: int
    ) -> Batch:
        """Resolve the topic, wait for buffer room, append; the batch's outcome is watched."""
        if type(data) is not bytes:
            data = as_record_value(data)
        chosen = await self._topics.topic_of(topic, topic_id)
        accumulator = self._accumulator
        size = len(data) + RECORD_HEADER_SIZE
        if accumulator.buffered + size > accumulator.limit:
            await accumulator.reserve(size)
        batch = accumulator.append(chosen, data, size, record_type)
        batch.watched = True
        return batch

    async def _enqueue_records(
        self,
        topic: int | str | None,
        records: Sequence[bytes] | Sequence[TlvRecord] | None,
        topic_id: int | None,
        record_type: int,
    ) -> list[Batch]:
        chosen = await self._topics.topic_of(topic, topic_id)
        if not records:
            raise ValueError("send_batch needs at least one record")
        return await self._accumulator.add_encoded(chosen, records, record_type)

    def _waiter(self, batch: Batch) -> asyncio.Future[None]:
        return batch.waiter(self._shared.running())

    async def _await_batches(
        self, futures: list[asyncio.Future[None]], batch_id: int, timeout: float | None
    ) -> None:
        limit = self.config.delivery_timeout_s if timeout is None else timeout
        await wait_settled(futures, batch_id, limit)

    # --- observability ----------------------------------------------------------------------------

    def metrics(self) -> ProducerMetrics:
        """Return a snapshot of the counters."""
        return self._window.metrics()
