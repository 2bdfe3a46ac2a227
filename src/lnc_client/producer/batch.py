"""The producer's values and its one mutable record: a batch, from its first record to its outcome.

`Batch` is created by the accumulator when a topic's batch opens, carried by the window while it
is queued and in flight, and settled there: its one shared future (created only when someone
waits) and its callbacks get the outcome. `SendAck`, `SendHandle` and `ProducerMetrics` are
what callers see of it. `ProducerState` is the lifecycle state that the facade, the accumulator
and the window share (one object, so that a fatal error seen by one stops them all).
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Generator
from dataclasses import dataclass
from enum import Enum

from lnc_client.connection import Connection, copy_error
from lnc_client.errors import ConnectionError, LanceError, TimeoutError
from lnc_client.metrics import HistogramSnapshot

__all__ = [
    "Batch",
    "ProducerMetrics",
    "ProducerState",
    "RecordValue",
    "SendAck",
    "SendCallback",
    "SendHandle",
    "State",
    "batch_id_of",
    "delivery_timeout",
    "settle_batches",
    "wait_settled",
]


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


RecordValue = bytes | bytearray | memoryview
"""A record's value: bytes-like, its `len()` counting bytes."""

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
        ack_latency: Time from writing each batch (its last attempt) to its Ack.
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
    ack_latency: HistogramSnapshot


class State(Enum):
    """Where a producer is in its life."""

    NEW = "new"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class ProducerState:
    """The lifecycle state shared by the facade, the accumulator and the window.

    Attributes:
        state: Where the producer is in its life.
        accepting: Whether appends are taken (False from `close()` or a fatal error on).
        fatal: The error that made the producer unusable, if any.
        loop: The event loop the producer runs on (set by `start()`).
    """

    __slots__ = ("accepting", "fatal", "loop", "state")

    def __init__(self) -> None:
        self.state = State.NEW
        self.accepting = False
        self.fatal: LanceError | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def raise_if_unusable(self) -> None:
        """Raise the fatal error, or why the producer takes no records now.

        Raises:
            LanceError: The fatal error.
            ConnectionError: The producer is not started, or closed.
        """
        if self.fatal is not None:
            raise self.fatal
        if self.state is State.NEW:
            raise ConnectionError("the producer is not started: use Producer.connect()")
        if self.state is not State.OPEN:
            raise ConnectionError("the producer is closed")

    def running(self) -> asyncio.AbstractEventLoop:
        """The producer's event loop (it is started)."""
        assert self.loop is not None
        return self.loop

    def now(self) -> float:
        """The event loop's clock."""
        return self.running().time()


class Batch:
    """One batch: open (records appended), then sealed, queued, in flight, settled."""

    __slots__ = (
        "attempts",
        "batch_id",
        "buffer",
        "callback_offsets",
        "callbacks",
        "conn",
        "count",
        "deadline",
        "drops",
        "expedited",
        "future",
        "payload",
        "received_at_send",
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
        self.payload: bytes | bytearray = b""
        self.count = 0
        self.size = 0
        self.timer: asyncio.Handle | None = None
        self.expedited = False
        self.future: asyncio.Future[None] | None = None
        self.callbacks: list[SendCallback] | None = None
        self.callback_offsets: list[int] = []
        """Parallel to `callbacks` (no tuple per record: nothing for the GC to track)."""
        self.watched = False
        self.conn: Connection | None = None
        self.sent_at = 0.0
        self.attempts = 0
        self.received_at_send = 0
        self.drops = 0

    def add_callback(self, callback: SendCallback) -> None:
        """Have `callback` called with the outcome of the record appended last."""
        self.watched = True
        if self.callbacks is None:
            self.callbacks = []
        self.callbacks.append(callback)
        self.callback_offsets.append(self.count - 1)

    def waiter(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """The batch's one shared future (created on the first call)."""
        if self.future is None:
            self.future = loop.create_future()
        return self.future


def batch_id_of(batch: Batch) -> int:
    """Sort key: batches are resent in batch-id order."""
    return batch.batch_id


def delivery_timeout(batch: Batch, seconds: float) -> TimeoutError:
    """The error of a batch whose `delivery_timeout_s` ran out."""
    return TimeoutError(f"batch {batch.batch_id} was not acknowledged within {seconds} s")


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
        await wait_settled([self._future], self.batch_id, timeout)
        return self._ack()

    def __await__(self) -> Generator[object, None, SendAck]:
        return self.wait().__await__()


async def wait_settled(
    futures: list[asyncio.Future[None]], batch_id: int, timeout: float | None
) -> None:
    """Wait for shared batch futures without cancelling them; raise a batch's own error.

    A batch's error object is shared by all its waiters, so each waiter raises its own copy.

    Raises:
        TimeoutError: Not all settled within `timeout` (they stay pending).
        LanceError: A copy of the first failed batch's error.
    """
    try:
        async with asyncio.timeout(timeout):
            for future in futures:
                await asyncio.shield(future)
    except LanceError as error:
        # the batch failed (also with a TimeoutError): its own cause, not this frame's
        raise copy_error(error) from error.__cause__
    except builtins.TimeoutError:
        raise TimeoutError(
            f"batch {batch_id} was not acknowledged within {timeout} s (it may still be delivered)"
        ) from None


async def settle_batches(
    pending: list[Batch],
    loop: asyncio.AbstractEventLoop,
    timeout: float,
    take_unreported: Callable[[], tuple[tuple[int, LanceError] | None, int]],
) -> None:
    """Wait until every batch in `pending` has settled; raise the first failure (`flush`).

    Args:
        pending: The batches to wait for.
        loop: The producer's loop (for the batches' shared futures).
        timeout: Bound on the wait.
        take_unreported: The first failure of a batch nobody waited for since the last flush,
            and how many there were (read after the wait, so failures during it count).

    Raises:
        TimeoutError: Some batches were not settled in time (they stay pending).
        LanceError: A batch it waited for failed, or one that nobody watched failed since the
            last flush; the first such error (lowest batch id) is raised, with a note saying
            how many batches failed.
    """
    futures = [batch.waiter(loop) for batch in pending]
    if futures:
        _, not_done = await asyncio.wait(futures, timeout=timeout)
        if not_done:
            raise TimeoutError(
                f"{len(not_done)} of {len(futures)} batches were not settled within {timeout} s"
            )
    failures = {
        batch.batch_id: error
        for batch, future in zip(pending, futures, strict=True)
        if (error := future.exception()) is not None and isinstance(error, LanceError)
    }
    unreported, count = take_unreported()
    if unreported is not None:
        failures.setdefault(*unreported)
    if failures:
        first = min(failures)
        error = copy_error(failures[first])  # the original is shared with the waiters
        error.add_note(f"{max(len(failures), count)} batch(es) failed; batch {first} failed first")
        raise error
