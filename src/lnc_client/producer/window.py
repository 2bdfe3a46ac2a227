"""The producer's window: sealed batches queued, sent, settled, resent; its sender task.

Data flow: the accumulator hands each sealed batch to `enqueue`. `pump` writes queued batches
with one `Connection.send_ingest` each while fewer than `max_pending_acks` are in flight;
batches to resend go first, in batch-id order. The connection calls back once per batch, after
its Ack or with an error (the ErrorResponse is attributed by the connection's ack barrier,
PROTOCOL.md §2.7). An Ack frees the window slot and the buffer memory and resolves the batch's
future and callbacks. A non-retryable error fails just that batch, keeping the server's text. A
retryable error or a lost connection puts the batch back to be resent with the **same batch
id** after a reconnect (or after a backoff, for a retryable error frame), until its
`delivery_timeout_s` runs out; with `auto_reconnect=False` it fails instead.

A batch refused with "Unknown topic" whose topic id was resolved from a name is *parked* while
the name is resolved again (`TopicCache.successor`): when the topic was created again under that
name, the batch is resent to the new id; otherwise it fails with the server's error.

The *sender* task does only what may wait: reconnecting (backoff, seeds, auth, through the
`ConnectionManager` the window owns), waiting until a peer that stopped reading accepts data
again, holding sends after Backpressure frames, and housekeeping (an ack timeout resets the
connection; batches past their delivery timeout fail).
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
from collections import deque
from typing import Final

from lnc_client.config import Address, ProducerConfig
from lnc_client.connection import Connection, IngestCallback
from lnc_client.discovery import ClusterClient
from lnc_client.errors import (
    ConnectionError,
    LanceError,
    ProtocolError,
    TimeoutError,
    TopicNotFoundError,
)
from lnc_client.metrics import LatencyHistogram
from lnc_client.pool import ConnectionPool
from lnc_client.producer.accumulator import Accumulator
from lnc_client.producer.batch import (
    Batch,
    ProducerMetrics,
    ProducerState,
    SendAck,
    SendCallback,
    State,
    batch_id_of,
    delivery_timeout,
)
from lnc_client.producer.topics import TopicCache
from lnc_client.reconnect import ConnectionManager

__all__ = ["COUNTERS", "Window"]

COUNTERS: Final = (
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
)
"""The counters the window keeps (the `ProducerMetrics` fields it fills)."""

_DROPS: Final = 3
_DROP_WINDOW_S: Final = 1.0
_BACKPRESSURE_FIRST_S: Final = 0.005
_BACKPRESSURE_MAX_S: Final = 1.0
_MIN_TICK_S: Final = 0.005


class Window:
    """The in-flight window over a reconnecting connection, and the sender task.

    Args:
        addresses: The server, then the seeds.
        config: The producer's configuration.
        shared: The producer's lifecycle state.
        accumulator: The open batches and buffer memory; it reads the window's queues.

    Attributes:
        manager: The connections (also used for the producer's control requests).
        topics: The topic names resolved over them.
        retry: Batches to resend, in batch-id order.
        ready: Sealed batches waiting for a window slot.
        in_flight: Batches sent and not settled, by batch id, oldest first.
        parked: Batches whose topic is gone, waiting for its name to be resolved again.
        counts: The counters named in `COUNTERS`.
    """

    def __init__(
        self,
        addresses: list[str | Address],
        config: ProducerConfig,
        shared: ProducerState,
        accumulator: Accumulator,
        *,
        pool: ConnectionPool | ClusterClient | None = None,
    ) -> None:
        self._config = config
        self._shared = shared
        self._accumulator = accumulator
        self.manager = ConnectionManager(
            addresses,
            config.connection_options(),
            config.reconnect,
            auto_reconnect=config.auto_reconnect,
            on_backpressure=self._on_backpressure_frame,
            pool=pool,
        )
        self.topics = TopicCache(self.manager)
        self._max_pending = config.max_pending_acks
        self.retry: list[Batch] = []
        self._last_drop: Connection | None = None
        self.ready: deque[Batch] = deque()
        self.in_flight: dict[int, Batch] = {}
        self.parked: list[Batch] = []
        self._reroutes: set[asyncio.Task[None]] = set()
        self._conn: Connection | None = None
        self._on_done: IngestCallback | None = None
        self._wake = asyncio.Event()
        self._sender_idle = False
        self._sender: asyncio.Task[None] | None = None
        self._hold_until = 0.0
        self._backpressure_delay = 0.0
        self._unreported: tuple[int, LanceError] | None = None
        self._unreported_count = 0
        self._tick = max(_MIN_TICK_S, min(config.request_timeout_s, config.delivery_timeout_s) / 8)
        self.counts = dict.fromkeys(COUNTERS, 0)
        accumulator.window = self  # it seals by the window's state (Nagle) and feeds `pump`
        self.ack_latency = LatencyHistogram()

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (bounded by `connect_timeout_s`) and start the sender task."""
        loop = self._shared.running()
        conn = await self.manager.get(deadline=loop.time() + self._config.connect_timeout_s)
        self._install(conn)
        self._sender = loop.create_task(self._run_sender(), name="lnc-producer-sender")

    async def stop(self) -> None:
        """Stop the sender task (and re-resolutions) and close the connection."""
        tasks = [*self._reroutes, *([self._sender] if self._sender is not None else [])]
        self._sender = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.manager.close()

    # --- queueing and settling ------------------------------------------------------------------

    def enqueue(self, batch: Batch) -> None:
        """Queue a sealed batch and send what the window allows."""
        self.ready.append(batch)
        self.pump()

    def pending(self) -> list[Batch]:
        """The batches sealed and not settled: to resend, queued, in flight, parked."""
        return [*self.retry, *self.ready, *self.in_flight.values(), *self.parked]

    def take_unreported(self) -> tuple[tuple[int, LanceError] | None, int]:
        """The first failure nobody waited for, and how many there were, since the last call."""
        taken = self._unreported, self._unreported_count
        self._unreported, self._unreported_count = None, 0
        return taken

    def _install(self, conn: Connection) -> None:
        in_flight = self.in_flight

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

    def pump(self) -> None:
        """Send queued batches while the window has room; hand waiting work to the sender."""
        conn = self._conn
        if conn is None or not conn.is_open or not conn.writable or self._hold_until:
            self._wake.set()
            return
        assert self._on_done is not None
        in_flight, limit, counts = self.in_flight, self._max_pending, self.counts
        now = self._shared.now()
        next_to_send = self._accumulator.next_to_send
        while len(in_flight) < limit and (batch := next_to_send()) is not None:
            if batch.deadline <= now:
                self._fail(batch, delivery_timeout(batch, self._config.delivery_timeout_s))
                continue
            batch.conn = conn
            batch.sent_at = now
            batch.received_at_send = conn.bytes_received
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
                bisect.insort(self.retry, batch, key=batch_id_of)
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

    def _acked(self, batch: Batch) -> None:
        self._backpressure_delay = 0.0
        self.ack_latency.observe(self._shared.now() - batch.sent_at)
        self._accumulator.release(batch)
        counts = self.counts
        counts["records_acked"] += batch.count
        counts["bytes_acked"] += len(batch.payload)
        counts["batches_acked"] += 1
        future = batch.future
        if future is not None and not future.done():
            future.set_result(None)
        if batch.callbacks:
            for offset, callback in zip(batch.callback_offsets, batch.callbacks, strict=True):
                self._call_back(callback, SendAck(batch.batch_id, batch.topic_id, offset), None)
        self.pump()

    def _errored(self, batch: Batch, error: LanceError) -> None:
        retry = self._shared.state is not State.CLOSED and self._shared.now() < batch.deadline
        if isinstance(error, TopicNotFoundError):
            self.topics.forget_id(batch.topic_id)
            if retry:
                self._park(batch, error)
                return
        if self._refused_by_hanging_up(batch, error):
            error = ProtocolError(
                f"the server closed the connection, without a word, each of the {_DROPS} times "
                f"batch {batch.batch_id} ({len(batch.payload)} bytes) was the oldest one it had "
                "not acknowledged: the batch is probably larger than the server's maximum "
                "payload (lower batch_size, or send smaller records)"
            )
            error.__cause__ = batch.conn.failure if batch.conn is not None else None
        if error.retryable and self._config.auto_reconnect and retry:
            self._requeue(batch)
            if batch.conn is not None and batch.conn.is_open:
                self._hold(self._config.reconnect.delay_for_attempt(batch.attempts - 1))
            self._wake.set()
            return
        self._fail(batch, error)
        self.pump()

    def _refused_by_hanging_up(self, batch: Batch, error: LanceError) -> bool:
        """Count a lost connection against the batch it most likely made the server drop.

        A server closes the connection, with no frame, on a payload over its maximum (PROTOCOL.md
        §1.4); the batch is then the oldest un-acked one, the server sent nothing after it, and
        the loss comes right after it was sent. `_DROPS` such losses in a row fail the batch;
        before each resend of a suspect batch `_advance` pings the new connection, so only a
        server that is up and answering can be blamed.
        """
        conn = batch.conn
        if not isinstance(error, ConnectionError) or conn is None or self._last_drop is conn:
            return False
        self._last_drop = conn  # the batches after it on this connection are not to blame
        quiet = conn.bytes_received == batch.received_at_send
        if quiet and self._shared.now() - batch.sent_at < _DROP_WINDOW_S:
            batch.drops += 1
        else:
            batch.drops = 0
        return batch.drops >= _DROPS

    def _requeue(self, batch: Batch) -> None:
        batch.attempts += 1
        self.counts["retries"] += 1
        bisect.insort(self.retry, batch, key=batch_id_of)

    def _park(self, batch: Batch, error: LanceError) -> None:
        self.parked.append(batch)
        task = self._shared.running().create_task(self._reroute(batch, error))
        self._reroutes.add(task)
        task.add_done_callback(self._reroutes.discard)

    async def _reroute(self, batch: Batch, error: LanceError) -> None:
        """Send a parked batch to its topic's successor, or fail it with the server's error."""
        try:
            successor = await self.topics.successor(batch.topic_id)
        except LanceError:
            successor = None
        if batch not in self.parked:  # failed meanwhile (the producer closed)
            return
        self.parked.remove(batch)
        if successor is None:
            self._fail(batch, error)
        else:
            batch.topic_id = successor
            self._requeue(batch)
        self.pump()

    def _fail(self, batch: Batch, error: LanceError) -> None:
        self._accumulator.release(batch)
        self.counts["records_failed"] += batch.count
        self.counts["batches_failed"] += 1
        future = batch.future
        if future is not None and not future.done():
            future.set_exception(error)
            future.exception()  # retrieved here: flush and the waiters read it explicitly
        if batch.callbacks:
            for callback in batch.callbacks:
                self._call_back(callback, None, error)
        if not batch.watched:
            self._unreported_count += 1
            if self._unreported is None:
                self._unreported = (batch.batch_id, error)

    def fail_everything(self, error: LanceError) -> None:
        """Stop taking records and fail every batch, open to in flight, with `error`."""
        self._shared.accepting = False
        batches = [*self._accumulator.drop_open(), *self.pending()]
        self.retry, self.ready, self.parked = [], deque(), []
        self.in_flight.clear()
        for batch in sorted(batches, key=batch_id_of):
            self._fail(batch, error)
        self._accumulator.wake_waiters()

    def _call_back(
        self, callback: SendCallback, ack: SendAck | None, error: LanceError | None
    ) -> None:
        try:
            callback(ack, error)
        except Exception as exc:  # noqa: BLE001 - one failing callback must not stop the others
            self._shared.running().call_exception_handler(
                {"message": "exception in a Producer send callback", "exception": exc}
            )

    # --- backpressure, reconnects, housekeeping -------------------------------------------------

    def _on_backpressure_frame(self) -> None:
        self.counts["backpressure_frames"] += 1
        delay = self._backpressure_delay
        self._backpressure_delay = min(
            _BACKPRESSURE_MAX_S, delay * 2 if delay else _BACKPRESSURE_FIRST_S
        )
        self._hold(self._backpressure_delay)

    def _hold(self, seconds: float) -> None:
        self._hold_until = max(self._hold_until, self._shared.now() + seconds)
        self._wake.set()

    async def _run_sender(self) -> None:
        wake = self._wake
        try:
            while True:
                if not wake.is_set():
                    busy = self.retry or self.ready or self.in_flight
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
            self._shared.fatal = ConnectionError(f"the producer's sender failed: {error!r}")
            self.fail_everything(self._shared.fatal)
            raise

    async def _advance(self) -> None:
        queued = [*self.retry, *self.ready, *self._accumulator.live_due()]
        if not queued:
            return
        conn = self._conn
        if conn is None or not conn.is_open:
            conn = await self.manager.get(deadline=min(b.deadline for b in queued))
            if self.retry and self.retry[0].drops:
                # the server hung up right after this batch before: make sure it is alive and
                # reading (a proxy in front of a stopped server hangs up on anything) before
                # the batch is blamed again, and before anything can be sent on `conn`
                try:
                    await conn.ping(timeout=self._config.request_timeout_s)
                except LanceError as error:
                    conn.abort(error)  # one that does not answer is replaced, not pinged again
                    raise
            self._install(conn)
        hold = self._hold_until - self._shared.now()
        if hold > 0:
            await asyncio.sleep(hold)
        self._hold_until = 0.0
        if not conn.writable:
            try:
                await conn.wait_writable(timeout=self._config.request_timeout_s)
            except TimeoutError as error:
                conn.abort(error)
                self._wake.set()
                return
        self.pump()

    def _sender_failed(self, error: LanceError) -> None:
        if error.retryable and self._config.auto_reconnect:
            self._wake.set()
            return
        self._shared.fatal = error
        self.fail_everything(error)

    def _housekeeping(self) -> None:
        now = self._shared.now()
        timeout = self._config.request_timeout_s
        if self.in_flight:
            oldest = next(iter(self.in_flight.values()))
            if now - oldest.sent_at >= timeout and oldest.conn is not None:
                oldest.conn.abort(
                    TimeoutError(f"no Ack for batch {oldest.batch_id} within {timeout} s")
                )
        for queue in (self.retry, self.ready):
            if any(batch.deadline <= now for batch in queue):
                expired = [batch for batch in queue if batch.deadline <= now]
                kept = [batch for batch in queue if batch.deadline > now]
                if queue is self.retry:
                    self.retry = kept
                else:
                    self.ready = deque(kept)
                for batch in expired:
                    self._fail(batch, delivery_timeout(batch, self._config.delivery_timeout_s))
        for batch in self._accumulator.take_expired_due(now):
            self._fail(batch, delivery_timeout(batch, self._config.delivery_timeout_s))

    def metrics(self) -> ProducerMetrics:
        """A snapshot of the counters, with the accumulator's buffered bytes."""
        return ProducerMetrics(
            **self.counts,
            buffered_bytes=self._accumulator.buffered,
            queued_batches=len(self.retry) + len(self.ready),
            in_flight_batches=len(self.in_flight),
            reconnects=self.manager.reconnects,
            ack_latency=self.ack_latency.snapshot(),
        )
