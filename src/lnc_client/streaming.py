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

Iteration is `StandaloneConsumer`'s: `async for record in consumer.records(limit=n)` or
`batches(limit=n)` ends after `n` records (batches) or when the consumer is closed, and a record
loop that ends inside a batch never lets auto-commit cover the records it did not finish
(`lnc_client.consumer.iteration`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from lnc_client.config import Addresses, StandaloneConfig
from lnc_client.consumer import StandaloneConsumer
from lnc_client.discovery import ClusterClient
from lnc_client.offsets import OffsetStore
from lnc_client.pool import ConnectionPool

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
        address: Addresses,
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

    async def stop(self) -> None:
        """`close()` under the Rust name: commit, Unsubscribe, disconnect."""
        await self.close()
