"""`StreamingConsumer`: the subscribe-based consumer of Lance's Rust client, with auto-commit.

It is a `StandaloneConsumer` whose offsets live on the server: it sends Subscribe when it
connects (and after every reconnect), starts where the server says the consumer's group last
committed, pulls with Fetch (the server never pushes, PROTOCOL.md §6), commits with CommitOffset
every `auto_commit_interval_s` and on `close()`, and sends Unsubscribe on `close()`.

The consumer id sent to the server is FNV-1a 64 of `config.consumer_name` (the group), so a
restarted consumer of the same group resumes where the group committed, for as long as the
server process runs (the server keeps these offsets in memory only). The Rust
`StreamingConsumer` uses a new random id per instance, so it never resumes; a Python consumer
cannot resume from what a Rust `StreamingConsumer` committed (docs/groups.md). For offsets that
survive a server restart, pass an `offset_store` (or `config.offset_dir`): a stored offset wins
over the server's.

Iteration: `async for record in consumer.records(limit=n)` or `batches(limit=n)` ends after
`n` records (batches) or when the consumer is closed, whichever comes first. When the record
loop ends inside a batch (the limit, a `break`, an exception), the consumer steps back to the
first record not processed (or to the batch start when the batch came in one compressed
envelope) before it closes or iterates again, so auto-commit never covers a record the caller
did not finish: at-least-once, record by record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence

from lnc_client.config import Address, StandaloneConfig
from lnc_client.consumer import PollResult, StandaloneConsumer
from lnc_client.discovery import ClusterClient
from lnc_client.offsets import OffsetStore
from lnc_client.pool import ConnectionPool
from lnc_client.protocol.records import TlvRecord

__all__ = ["StreamingConsumer"]


class StreamingConsumer(StandaloneConsumer):
    """Consumes a topic with Subscribe, server-side offsets and auto-commit.

    `async with StreamingConsumer(address, StandaloneConfig("my-group", topic_name="events"))
    as consumer: async for record in consumer.records(): ...`. `stop()` is `close()`.

    Args:
        address: `host:port` (or several, tried in turn).
        config: `consumer_name` names the group whose server-side offset is used and committed;
            `server_side_offsets` is forced on.
        offset_store: Also keep offsets here (it wins over the server's at start); default:
            a `FileOffsetStore` under `config.offset_dir`, else none (the server's only).
        on_commit: Called with the offset after every commit.
        pool: Borrow the connection from this `ConnectionPool` or `ClusterClient`.

    Raises:
        ValueError: No consumer name, or no topic.
    """

    def __init__(
        self,
        address: str | Address | Sequence[str | Address],
        config: StandaloneConfig,
        offset_store: OffsetStore | None = None,
        *,
        on_commit: Callable[[int], None] | None = None,
        pool: ConnectionPool | ClusterClient | None = None,
    ) -> None:
        if not config.consumer_name:
            raise ValueError("a StreamingConsumer needs a consumer_name (its group)")
        super().__init__(
            address,
            dataclasses.replace(config, server_side_offsets=True),
            offset_store,
            on_commit=on_commit,
            pool=pool,
        )
        self._pending: tuple[object, PollResult, int] | None = None

    async def stop(self) -> None:
        """`close()` under the Rust name: commit, Unsubscribe, disconnect."""
        await self.close()

    async def batches(
        self, *, timeout: float | None = None, limit: int | None = None
    ) -> AsyncIterator[PollResult]:
        """Yield non-empty batches until the consumer is closed or `limit` batches came.

        Args:
            timeout: Per-poll timeout (default `config.poll_timeout_s`); it bounds how soon a
                `close()` from another task ends the loop.
            limit: Stop after this many batches (None: only on close).
        """
        self._rewind_abandoned()
        count = 0
        while not self.closed and (limit is None or count < limit):
            result = await self.poll(timeout)
            if result is not None:
                count += 1
                yield result

    async def close(self) -> None:
        """Step back over records a record loop left unprocessed, then close (commit included).

        See `StandaloneConsumer.close`.
        """
        self._rewind_abandoned()
        await super().close()

    async def records(
        self, *, timeout: float | None = None, limit: int | None = None
    ) -> AsyncIterator[TlvRecord]:
        """Yield records one at a time until closed or `limit` records came.

        A record counts as processed when the loop asks for the next one. When the loop ends
        inside a batch (the limit, `break`, an exception), the records from the last one handed
        out are given again: the consumer steps back to it (to the batch start for a compressed
        envelope) at the latest when it is closed or iterated again, so neither `close()` nor
        auto-commit commits past a record the caller did not finish. An explicit `commit()`
        inside the loop commits the whole batch being iterated.
        """
        self._rewind_abandoned()
        token = object()
        count = 0
        try:
            async for batch in self.batches(timeout=timeout):
                for index, record in enumerate(batch.records):
                    self._pending = (token, batch, index)
                    if limit is not None and count >= limit:
                        return
                    yield record
                    count += 1
                self._pending = None
                if limit is not None and count >= limit:
                    return
        finally:
            if self._pending is not None and self._pending[0] is token:
                self._rewind_abandoned()

    def _rewind_abandoned(self) -> None:
        """Continue at the first unprocessed record of a batch a record loop left."""
        pending, self._pending = self._pending, None
        if pending is None or self.closed:
            return
        _, batch, index = pending
        sizes = [record.total_size for record in batch.records]
        if sum(sizes) == batch.end_offset - batch.start_offset:
            self.seek(batch.start_offset + sum(sizes[:index]))
        else:
            self.seek(batch.start_offset)

    def __aiter__(self) -> AsyncIterator[TlvRecord]:
        return self.records()
