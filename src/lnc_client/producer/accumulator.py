"""The producer's accumulator: one open batch per topic, sealed into payloads; buffer memory.

Data flow: `append_open` (every send's fast path; `append` opens a batch first when needed) adds
a record's TLV bytes (`[type u8][length u32 LE][value]`, the header reused) to its topic's
open batch (one `bytearray`); nothing else is allocated per record. The batch id is assigned
when the batch opens. A batch is sealed when it reaches `batch_size` bytes, when its linger
timer fires (armed once per batch), soon after someone awaits it (`expedite`), or on `seal_all`
(flush, close, a full buffer). Linger is Nagle-style: a batch opened while the window is `idle`
(nothing queued or in flight) is sealed at the end of the loop iteration; a linger that expires
while the window is `saturated` (full, or sealed batches waiting) makes the batch *due* instead,
and the window takes due batches (`next_to_send`, which seals them) as slots free; when the
last batch on its way is released, every open batch becomes due. Sealing makes the payload (one
LZ4 envelope when that is smaller) and hands the batch to `on_sealed`: the window, which sends
it.

The accumulator also keeps the account of `buffer_memory`: every record byte from its append
until its batch settles. `reserve` waits (BLOCK policy) or raises (RAISE policy) while it is
full; the window calls `release` when a batch settles.
"""

from __future__ import annotations

import asyncio
import builtins
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final, Protocol, TypeVar, cast

from lnc_client.config import BufferFullPolicy, ProducerConfig
from lnc_client.errors import BackpressureError
from lnc_client.producer.batch import Batch, ProducerState, RecordValue
from lnc_client.protocol.frame import MAX_PAYLOAD_SIZE
from lnc_client.protocol.records import (
    RECORD_HEADER_SIZE,
    RecordType,
    TlvRecord,
    compress_records,
    encode_records,
    encode_values,
    pack_record_header,
)

__all__ = ["Accumulator", "WindowQueues"]

RAW: Final = int(RecordType.RAW_DATA)
_U32_MAX: Final = 0xFFFF_FFFF
R = TypeVar("R")


class WindowQueues(Protocol):
    """What the accumulator reads of the window: its queues (sealing follows their state)."""

    retry: list[Batch]
    ready: deque[Batch]
    in_flight: dict[int, Batch]


class Accumulator:
    """Open batches per topic, their sealing, and the `buffer_memory` account.

    Args:
        config: The producer's configuration.
        shared: The producer's lifecycle state.
        on_sealed: Takes every sealed batch (its payload set) to be sent.

    Attributes:
        open: The open batch of each topic that has one.
        due: Open batches to seal as soon as a window slot frees, oldest first.
        window: The window's queues (set by the window): *idle* when nothing is queued or in
            flight (a new batch then goes at once), *saturated* when sealed batches wait or
            every slot is taken (linger then makes a batch due instead of sealing it).
        buffered: Record bytes held, open to settled.
        limit: `buffer_memory`.
    """

    def __init__(
        self, config: ProducerConfig, shared: ProducerState, on_sealed: Callable[[Batch], None]
    ) -> None:
        self._config = config
        self._shared = shared
        self._on_sealed = on_sealed
        self.due: deque[Batch] = deque()
        self.window: WindowQueues | None = None
        self._batch_size = min(config.batch_size, MAX_PAYLOAD_SIZE)
        self._header = pack_record_header(RAW, 0)
        """The header of the last record appended (reused while type and length repeat)."""
        self._header_size = RECORD_HEADER_SIZE
        self._header_type = RAW
        self._linger_s = config.linger_ms / 1000
        self._compression = config.compression
        self._next_batch_id = 0
        self._space_waiters: list[asyncio.Future[None]] = []
        self.open: dict[int, Batch] = {}
        self.buffered = 0
        self.limit = config.buffer_memory

    # --- appending ------------------------------------------------------------------------------

    def append(self, topic_id: int, data: RecordValue, record_type: int) -> Batch:
        """Append one record to its topic's batch, opening one (or a fresh one) when needed.

        `data` is bytes-like with `len()` counting bytes (`as_record_value`); the caller has
        made room in `buffer_memory` (`reserve`). When the append fails, the batch is left
        exactly as it was, and a batch opened for the record is dropped again.

        Raises:
            ValueError: A record type outside 0x00-0xFE, a bad topic id, a record over 16 MiB.
            ConnectionError: The producer takes no records.
            BackpressureError: The buffer filled up since the caller made room.
        """
        if not self._shared.accepting:
            self._shared.raise_if_unusable()
        size = len(data) + RECORD_HEADER_SIZE
        header_of(record_type, 0)  # a bad record type opens no batch
        batch = self.open.get(topic_id)
        if batch is None:
            batch = self._open_batch(topic_id, size)
        elif len(batch.buffer) + size > MAX_PAYLOAD_SIZE:
            self.seal(batch)
            batch = self._open_batch(topic_id, size)
        try:
            appended = self.append_open(topic_id, data, record_type)
        finally:
            if not batch.count:  # opened for this record: an open batch always holds a record
                self._drop(batch)
        if appended is None:
            raise BackpressureError(f"buffer_memory ({self.limit} bytes) is full")
        return batch

    def append_open(self, topic_id: int, data: RecordValue, record_type: int) -> Batch | None:
        """Append one record to its topic's open batch; None (nothing done) when it cannot.

        This is the per-record fast path of every send: no batch to open, one dictionary
        lookup, the 5-byte header reused while records keep their type and length, two
        `bytearray` extends. It returns None, leaving everything as it was, when the topic has
        no open batch, the record would not fit in it (16 MiB frame limit), the producer takes
        no records, or `buffer_memory` is full (a record may always go into an empty buffer).

        Raises:
            ValueError: A record type outside 0x00-0xFE (nothing appended).
        """
        batch = self.open.get(topic_id)
        if batch is None or not self._shared.accepting:
            return None
        size = len(data) + RECORD_HEADER_SIZE
        buffered = self.buffered + size
        buffer = batch.buffer
        mark = len(buffer)
        end = mark + size
        if (buffered > self.limit and self.buffered) or end > MAX_PAYLOAD_SIZE:
            return None
        if size != self._header_size or record_type != self._header_type:
            self._header = header_of(record_type, size - RECORD_HEADER_SIZE)
            self._header_size, self._header_type = size, record_type
        try:
            buffer += self._header
            buffer += data
        except BaseException:
            del buffer[mark:]
            raise
        batch.count += 1
        self.buffered = buffered
        if end >= self._batch_size:
            self.seal(batch)
        return batch

    def add_records(self, topic_id: int, count: int, payload: bytes) -> Batch:
        """Queue an encoded payload of `count` records as a batch of its own.

        The topic's open batch is sealed first, so the records keep their order.

        Raises:
            ConnectionError: The producer takes no records.
        """
        if not self._shared.accepting:
            self._shared.raise_if_unusable()
        open_batch = self.open.get(topic_id)
        if open_batch is not None:
            self.seal(open_batch)
        batch = self._new_batch(topic_id)
        batch.count = count
        self.buffered += len(payload)
        self._queue(batch, payload)
        return batch

    async def add_encoded(
        self, topic_id: int, records: Sequence[bytes] | Sequence[TlvRecord], record_type: int
    ) -> list[Batch]:
        """Encode records (`encode_chunks`) and queue each frame-sized payload as a batch.

        Raises:
            TypeError: A value that is not bytes-like, or bytes mixed with `TlvRecord`s.
            ValueError: A bad record type, or a record over the frame limit.
            BackpressureError: The buffer stayed full.
        """
        batches = []
        for count, payload in encode_chunks(records, record_type):
            if self.buffered + len(payload) > self.limit:
                await self.reserve(len(payload))
            batches.append(self.add_records(topic_id, count, payload))
        return batches

    def _new_batch(self, topic_id: int) -> Batch:
        if type(topic_id) is not int or not 1 <= topic_id <= _U32_MAX:
            if topic_id == 0:
                raise ValueError(
                    "topic id 0 names no topic (ids start at 1): the server would store the "
                    "records where no consumer can read them"
                )
            raise ValueError(f"a topic id is an int in 1..2**32-1, not {topic_id!r}")
        self._next_batch_id += 1
        return Batch(
            self._next_batch_id, topic_id, self._shared.now() + self._config.delivery_timeout_s
        )

    def _open_batch(self, topic_id: int, first_record: int) -> Batch:
        if first_record > MAX_PAYLOAD_SIZE:
            raise ValueError(f"a record of {first_record} bytes exceeds the 16 MiB frame limit")
        batch = self._new_batch(topic_id)
        loop = self._shared.running()
        if self._idle():  # nothing on the way: a lone record does not wait (Nagle)
            batch.expedited = True
            batch.timer = loop.call_soon(self._linger_expired, batch)
        else:
            batch.timer = loop.call_later(self._linger_s, self._linger_expired, batch)
        self.open[topic_id] = batch
        return batch

    def _drop(self, batch: Batch) -> None:
        """Forget an open batch that holds no record (its id is given out again)."""
        if batch.timer is not None:
            batch.timer.cancel()
        del self.open[batch.topic_id]
        if batch.batch_id == self._next_batch_id:
            self._next_batch_id -= 1

    # --- sealing --------------------------------------------------------------------------------

    def _linger_expired(self, batch: Batch) -> None:
        if self.open.get(batch.topic_id) is not batch:
            return
        if self._saturated():
            batch.timer = None
            self.due.append(batch)  # sealed by the window when a slot frees
            return
        self.seal(batch)

    def _idle(self) -> bool:
        queues = self.window
        return queues is None or not (queues.in_flight or queues.ready or queues.retry)

    def _saturated(self) -> bool:
        queues = self.window
        if queues is None:
            return False
        busy = len(queues.in_flight) >= self._config.max_pending_acks
        return busy or bool(queues.ready or queues.retry)

    def next_to_send(self) -> Batch | None:
        """The batch for a free window slot: a resend, a sealed one, else the oldest due one.

        A due batch is sealed here (not handed to `on_sealed`).
        """
        queues = self.window
        assert queues is not None
        if queues.retry:
            return queues.retry.pop(0)
        if queues.ready:
            return queues.ready.popleft()
        due = self.due
        while due:
            batch = due.popleft()
            if self.open.get(batch.topic_id) is batch:
                self._finish(batch, self._take_payload(batch))
                return batch
        return None

    def live_due(self) -> list[Batch]:
        """The due batches still open (those sealed meanwhile are forgotten here)."""
        live = [batch for batch in self.due if self.open.get(batch.topic_id) is batch]
        if len(live) != len(self.due):
            self.due = deque(live)
        return live

    def take_expired_due(self, now: float) -> list[Batch]:
        """Seal and remove the due batches whose delivery deadline has passed (to fail them)."""
        expired = [batch for batch in self.live_due() if batch.deadline <= now]
        if expired:
            self.due = deque(batch for batch in self.due if batch.deadline > now)
            for batch in expired:
                self._finish(batch, self._take_payload(batch))
        return expired

    def expedite(self, batch: Batch) -> None:
        """Seal `batch` at the end of this loop iteration (someone waits for its Ack)."""
        if batch.expedited or batch.timer is None or self.open.get(batch.topic_id) is not batch:
            return  # already on its way, or due (sealed as soon as a window slot frees)
        batch.expedited = True
        batch.timer.cancel()
        batch.timer = self._shared.running().call_soon(self._linger_expired, batch)

    def seal(self, batch: Batch) -> None:
        """Close `batch` to appends and hand it on to be sent."""
        self._queue(batch, self._take_payload(batch))

    def _take_payload(self, batch: Batch) -> bytearray:
        if self.open.get(batch.topic_id) is batch:
            del self.open[batch.topic_id]
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        payload = batch.buffer  # sent as it is, never changed again: no copy
        batch.buffer = bytearray()
        return payload

    def seal_all(self) -> None:
        """Seal every open batch."""
        for batch in list(self.open.values()):
            self.seal(batch)

    def _queue(self, batch: Batch, payload: bytes | bytearray) -> None:
        self._finish(batch, payload)
        self._on_sealed(batch)

    def _finish(self, batch: Batch, payload: bytes | bytearray) -> None:
        batch.size = len(payload)
        if self._compression:
            compressed = compress_records(payload)
            if len(compressed) < len(payload):
                payload = compressed
        batch.payload = payload

    def drop_open(self) -> list[Batch]:
        """Remove the open batches (to fail them); their timers are cancelled."""
        batches = list(self.open.values())
        for batch in batches:
            batch.size = len(batch.buffer)
            if batch.timer is not None:
                batch.timer.cancel()
        self.open.clear()
        self.due.clear()
        return batches

    # --- memory ---------------------------------------------------------------------------------

    async def reserve(self, size: int) -> None:
        """Wait until `size` more bytes fit in `buffer_memory` (or raise).

        Raises:
            ValueError: `size` is over the 16 MiB frame limit.
            BackpressureError: The buffer is full (RAISE) or stayed full `max_block_s` (BLOCK).
            ConnectionError: The producer takes no records.
        """
        self._shared.raise_if_unusable()
        if size > MAX_PAYLOAD_SIZE:
            raise ValueError(f"a record of {size} bytes exceeds the 16 MiB frame limit")
        if self._config.buffer_full is BufferFullPolicy.RAISE:
            if self.buffered and self.buffered + size > self.limit:
                raise BackpressureError(f"buffer_memory ({self.limit} bytes) is full")
            return
        loop = self._shared.running()
        deadline = loop.time() + self._config.max_block_s
        while self.buffered and self.buffered + size > self.limit:
            if self._idle():  # else the Acks on their way free room (and Nagle seals)
                self.seal_all()
            waiter = loop.create_future()
            self._space_waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except builtins.TimeoutError:
                raise BackpressureError(
                    f"buffer_memory ({self.limit} bytes) stayed full for "
                    f"{self._config.max_block_s} s"
                ) from None
            finally:
                waiter.cancel()
            self._shared.raise_if_unusable()

    def release(self, batch: Batch) -> None:
        """Give a settled batch's bytes back to `buffer_memory`.

        When that was the last batch on its way, every open batch becomes due (Nagle: what
        gathered behind it goes now).
        """
        self.buffered -= batch.size
        if self.open and self._idle():
            self.due.extend(self.open.values())
        if self._space_waiters:
            self.wake_waiters()

    def wake_waiters(self) -> None:
        """Let every send waiting for buffer room look again."""
        waiters, self._space_waiters = self._space_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


def header_of(record_type: int, length: int) -> bytes:
    """The 5-byte TLV header of a record.

    Raises:
        ValueError: A record type outside 0x00-0xFE.
    """
    if isinstance(record_type, int) and 0 <= record_type < 0xFF:
        return pack_record_header(record_type, length)
    raise ValueError(f"record_type must be 0x00-0xFE, not {record_type!r}")


def encode_chunks(
    records: Sequence[bytes] | Sequence[TlvRecord], record_type: int
) -> list[tuple[int, bytes]]:
    """Encode records into TLV payloads of at most one frame each: [(record count, payload)].

    Raises:
        TypeError: `bytes` and `TlvRecord` values mixed.
        ValueError: A record type outside 0x00-0xFE, or a record over the frame limit.
    """
    if isinstance(records[0], TlvRecord):
        typed = [r for r in records if isinstance(r, TlvRecord)]
        if len(typed) != len(records):
            raise TypeError("send_batch takes all bytes or all TlvRecord values")
        return _split(typed, encode_records, lambda r: r.total_size)
    values = cast("Sequence[bytes]", records)
    header_of(record_type, 0)  # the record type is checked before anything is encoded
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
