"""Record-by-record iteration that never lets a commit cover a record the caller did not finish.

`batches()` hands out whole `PollResult`s; auto-commit (and `close()`) commit the consumer's
`current_offset`, the end of the last batch handed out. A record loop (`records()`,
`async for record in consumer`) can end inside a batch: a limit, a `break`, an exception. Then
the rest of that batch was delivered but not processed, and a commit would skip it.

`RecordLoop` remembers, while a record loop runs, which record of which batch it handed out last
(a record counts as processed when the loop asks for the next one). When the loop ends inside a
batch, `rewind()` seeks the consumer back to that record: to its exact byte offset when the
batch's records are stored one after another, to the batch start when they came in one
compressed envelope (no offset inside it). It runs when the loop ends (`limit`, or the generator
is closed) and, because Python finalises an abandoned async generator only later, also when the
consumer is closed or iterated again, whichever comes first. An explicit `seek` by the caller
wins: it forgets the unfinished batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from operator import length_hint

from lnc_client.consumer.result import PollResult
from lnc_client.protocol.records import TlvRecord

__all__ = ["RecordLoop"]


class RecordLoop:
    """The unfinished batch of the running record loop of one consumer.

    Args:
        seek: The consumer's `seek(offset)`.
        closed: Whether the consumer is closed (a closed consumer is not sought).
    """

    def __init__(self, seek: Callable[[int], None], closed: Callable[[], bool]) -> None:
        self._seek = seek
        self._closed = closed
        self._pending: tuple[object, PollResult, int | Iterator[TlvRecord]] | None = None

    def forget(self) -> None:
        """Drop the unfinished batch: the caller chose a new position (`seek`)."""
        self._pending = None

    def rewind(self) -> None:
        """Seek back to the first unprocessed record of an unfinished batch, if there is one."""
        pending, self._pending = self._pending, None
        if pending is None or self._closed():
            return
        _, batch, position = pending
        if isinstance(position, int):
            index = position
        else:  # the batch's record iterator: the record it gave out last is not processed yet
            index = len(batch.records) - length_hint(position) - 1
        sizes = [record.total_size for record in batch.records]
        if sum(sizes) == batch.end_offset - batch.start_offset:
            self._seek(batch.start_offset + sum(sizes[:index]))
        else:
            self._seek(batch.start_offset)

    async def records(
        self, batches: AsyncIterator[PollResult], limit: int | None
    ) -> AsyncIterator[TlvRecord]:
        """Yield the records of `batches`, at most `limit`, tracking the unfinished batch.

        A whole batch is handed out through one list iterator whose position `rewind` reads,
        so a record costs nothing here but its `yield`; only the batch that a limit ends inside
        is counted record by record.
        """
        self.rewind()
        token = object()
        left = limit
        try:
            async for batch in batches:
                records = batch.records
                if left is not None and left < len(records):
                    for index in range(left):
                        self._pending = (token, batch, index)
                        yield records[index]
                    self._pending = (token, batch, left)
                    return
                handed_out = iter(records)
                self._pending = (token, batch, handed_out)
                for record in handed_out:
                    yield record
                self._pending = None
                if left is not None:
                    left -= len(records)
                    if not left:
                        return
        finally:
            if self._pending is not None and self._pending[0] is token:
                self.rewind()
