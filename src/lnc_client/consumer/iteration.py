"""Record-by-record iteration that never lets a commit cover a record the caller did not finish.

`batches()` hands out whole `PollResult`s; auto-commit (and `close()`) commit the consumer's
`current_offset`, the end of the last batch handed out. A record loop (`records()`,
`async for record in consumer`, and the blocking `for record in consumer` of `lnc_client.sync`)
can end inside a batch: a limit, a `break`, an exception. Then the rest of that batch was
delivered but not processed, and a commit would skip it.

`RecordLoop` remembers, while a record loop runs, which record of which batch it handed out last
(a record counts as processed when the loop asks for the next one). When the loop ends inside a
batch, `rewind()` seeks the consumer back to that record: to its exact byte offset when the
batch's records are stored one after another, to the batch start when they came in one
compressed envelope (no offset inside it). It runs when the loop ends (`limit`, or the generator
is closed) and, because Python finalises an abandoned generator only later, also when the
consumer is closed or iterated again, whichever comes first. An explicit `seek` by the caller
wins: it forgets the unfinished batch.

`_hand_out` serves the asyncio loops (`records`, `mapped`) and the blocking one (`blocking`);
`mapped` and `blocking` may hand out one item per record in place of the record itself (the
decoded messages of `lnc_client.serde.DeserializingConsumer` and its blocking twin).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TypeVar

from lnc_client.consumer.result import PollResult
from lnc_client.protocol.records import TlvRecord

__all__ = ["RecordLoop", "records_of"]

T = TypeVar("T")


def records_of(batch: PollResult) -> Sequence[TlvRecord]:
    """The items of a plain record loop: the batch's own records."""
    return batch.records


class RecordLoop:
    """The unfinished batch of the running record loop of one consumer.

    Args:
        seek: The consumer's `seek(offset)`.
        closed: Whether the consumer is closed (a closed consumer is not sought).
    """

    def __init__(self, seek: Callable[[int], None], closed: Callable[[], bool]) -> None:
        self._seek = seek
        self._closed = closed
        self._pending: tuple[object, PollResult, int | list[int]] | None = None

    def forget(self) -> None:
        """Drop the unfinished batch: the caller chose a new position (`seek`)."""
        self._pending = None

    def rewind(self) -> None:
        """Seek back to the first unprocessed record of an unfinished batch, if there is one."""
        pending, self._pending = self._pending, None
        if pending is None or self._closed():
            return
        _, batch, position = pending
        # a list counts the items the loop gave out: the last of them is not processed yet
        index = position if isinstance(position, int) else max(position[0] - 1, 0)
        sizes = [record.total_size for record in batch.records]
        if sum(sizes) == batch.end_offset - batch.start_offset:
            self._seek(batch.start_offset + sum(sizes[:index]))
        else:
            self._seek(batch.start_offset)

    def _hand_out(
        self, token: object, batch: PollResult, items: Sequence[T], left: int | None
    ) -> tuple[Sequence[T], list[int], int | None]:
        """The items to hand out of `batch` (one per record), their counter, and what is left.

        The loop counts the items it gives out in the one-item list `rewind` reads
        (`for counter[0], item in enumerate(part, 1)`: an item store, no object per item);
        a limit that ends inside the batch cuts `part` short.
        """
        counter = [0]
        self._pending = (token, batch, counter)
        if left is not None and left < len(items):
            return items[:left], counter, 0
        return items, counter, None if left is None else left - len(items)

    def _finished(self, token: object, batch: PollResult, counter: list[int]) -> None:
        """The loop asked past the last item it was to hand out: all of them are processed."""
        if self._pending is not None and self._pending[2] is counter:
            done = counter[0]
            self._pending = None if done == len(batch.records) else (token, batch, done)

    def _end(self, token: object) -> None:
        if self._pending is not None and self._pending[0] is token:
            self.rewind()

    def records(
        self, batches: AsyncIterator[PollResult], limit: int | None
    ) -> AsyncIterator[TlvRecord]:
        """Yield the records of `batches`, at most `limit`, tracking the unfinished batch."""
        return self.mapped(batches, limit, records_of)

    async def mapped(
        self,
        batches: AsyncIterator[PollResult],
        limit: int | None,
        items: Callable[[PollResult], Sequence[T]],
    ) -> AsyncIterator[T]:
        """`records`, yielding `items(batch)` of every batch (one item per record, in order).

        Args:
            batches: The consumer's batches.
            limit: How many items at most (None: as many as `batches` gives).
            items: One item per record of the batch, in order (e.g. its decoded messages).
        """
        self.rewind()
        token, left = object(), limit
        try:
            if left is not None and left <= 0:
                return
            async for batch in batches:
                part, counter, left = self._hand_out(token, batch, items(batch), left)
                for counter[0], item in enumerate(part, 1):
                    yield item
                self._finished(token, batch, counter)
                if left == 0:
                    return
        finally:
            self._end(token)

    def blocking(
        self,
        batches: Iterator[PollResult],
        limit: int | None,
        items: Callable[[PollResult], Sequence[T]],
    ) -> Iterator[T]:
        """`mapped` for a blocking consumer (same arguments)."""
        self.rewind()
        token, left = object(), limit
        try:
            if left is not None and left <= 0:
                return
            for batch in batches:
                part, counter, left = self._hand_out(token, batch, items(batch), left)
                for counter[0], item in enumerate(part, 1):
                    yield item
                self._finished(token, batch, counter)
                if left == 0:
                    return
        finally:
            self._end(token)
