"""`GroupedConsumer`: a worker of a consumer group; consumes the topics its coordinator assigns.

Data flow. `start()` sends JOIN to the coordinator (Python or Rust, `wire` protocol) and opens
one `StandaloneConsumer` per assigned topic. A background task sends HEARTBEAT every
`heartbeat_interval_s`; when the reply carries a newer generation it asks GET_ASSIGNMENTS and
records the new assignment. A worker the coordinator has dropped (reply `Worker not found`, e.g.
after a pause longer than the session timeout) joins again. The new assignment is applied by the
consuming side, between batches (`_sync`): revoked topics are committed (what was processed)
and closed, new topics are opened at the group's committed offset.

Offsets are committed per topic under one consumer name, `WorkerConfig.group_id` (default: the
worker id, as the Rust worker does), to the offset store and, with `server_side_offsets`, to the
server (CommitOffset). A topic that moves to another worker of the group resumes there from the
last commit, wherever that worker runs, as long as both use the same group id and either the
server-side offsets or a shared offset store.

At-least-once. `batches()` counts a batch as processed when the loop asks for the next one, and
commits processed batches every `auto_commit_interval_s`, when a topic is revoked, and on
`leave()`/`close()`. A worker killed mid-batch has not committed that batch, so the topic's next
owner gets it again: records can be processed twice, never skipped. With `next_batch()` the caller
commits (`commit(topic)`) after processing; revocation then commits nothing on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Self

from lnc_client._lifecycle import AsyncLifecycle, cancel_and_wait
from lnc_client.config import (
    Address,
    Addresses,
    SeekPosition,
    StandaloneConfig,
    StartPosition,
    parse_address,
)
from lnc_client.consumer import PollResult, StandaloneConsumer
from lnc_client.discovery import ClusterClient
from lnc_client.errors import ConnectionError, InvalidRequestError, LanceError, ProtocolError
from lnc_client.groups.transport import exchange
from lnc_client.groups.wire import (
    WORKER_NOT_FOUND,
    Assignments,
    CoordinatorError,
    HeartbeatAck,
    JoinAccepted,
    Reply,
    RequestKind,
    validate_worker_id,
)
from lnc_client.offsets import FileOffsetStore, MemoryOffsetStore, OffsetStore
from lnc_client.pool import ConnectionPool

__all__ = ["GroupBatch", "GroupedConsumer", "WorkerConfig"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Configuration of a `GroupedConsumer` (the Rust `WorkerConfig`, plus the group id).

    Attributes:
        worker_id: The worker's unique id in the group.
        group_id: The consumer name offsets are committed under; the same for every worker of
            the group so a moved topic resumes where the group left it. Empty: the worker id
            (the Rust worker's behaviour: offsets do not follow a moved topic).
        max_fetch_bytes: Fetch window per topic.
        heartbeat_interval_s: How often to send a heartbeat; well below the session timeout.
        offset_dir: Directory of a `FileOffsetStore` (shared by the group's workers on one
            host), or None.
        start_position: Where a topic starts when the group has no committed offset.
        server_side_offsets: Also Subscribe/CommitOffset on the server, which shares offsets
            between hosts (the server keeps them in memory).
        auto_commit_interval_s: `batches()` commits processed batches this often (0: after
            every batch).
        request_timeout_s: Bound on each coordinator request.
        consumer: Template for the per-topic consumers: TLS, token, timeouts, poll settings.
    """

    worker_id: str
    _: KW_ONLY
    group_id: str = ""
    max_fetch_bytes: int = 1024 * 1024
    heartbeat_interval_s: float = 3.0
    offset_dir: Path | None = None
    start_position: StartPosition = SeekPosition.BEGINNING
    server_side_offsets: bool = True
    auto_commit_interval_s: float = 1.0
    request_timeout_s: float = 10.0
    consumer: StandaloneConfig = field(default_factory=StandaloneConfig)

    def __post_init__(self) -> None:
        validate_worker_id(self.worker_id)
        if self.heartbeat_interval_s <= 0 or self.request_timeout_s <= 0:
            raise ValueError("heartbeat_interval_s and request_timeout_s must be positive")
        if self.auto_commit_interval_s < 0 or self.max_fetch_bytes <= 0:
            raise ValueError("need auto_commit_interval_s >= 0 and max_fetch_bytes > 0")

    @property
    def offset_name(self) -> str:
        """The consumer name offsets are committed under."""
        return self.group_id or self.worker_id


@dataclass(frozen=True, slots=True)
class GroupBatch:
    """One batch `GroupedConsumer.batches()` delivered: its topic and its records."""

    topic_id: int
    result: PollResult


class GroupedConsumer(AsyncLifecycle):
    """A worker: joins a group, consumes its assigned topics, follows rebalances.

    `worker = await GroupedConsumer.join(server, coordinator, WorkerConfig("w1", group_id="g"))`
    or `async with GroupedConsumer(server, coordinator, config) as worker:`; then
    `async for batch in worker.batches(): ...` (auto-commit), or `next_batch(topic)` and
    `commit(topic)` over `worker.assignments`.

    Args:
        server: The LWP server address (or several, tried in turn).
        coordinator: The coordinator's `host:port`.
        config: The worker configuration.
        offset_store: Where offsets are committed (default: a `FileOffsetStore` under
            `config.offset_dir`, else only the server's offsets).
        pool: Per-topic consumers borrow their connections from this `ConnectionPool` (or
            `ClusterClient`), so a rebalance reuses connections instead of opening new ones.
    """

    def __init__(
        self,
        server: Addresses,
        coordinator: str | Address,
        config: WorkerConfig,
        *,
        offset_store: OffsetStore | None = None,
        pool: ConnectionPool | ClusterClient | None = None,
    ) -> None:
        self.config = config
        self._pool = pool
        self._server = server
        self._coordinator = parse_address(coordinator)
        if offset_store is None and config.offset_dir is not None:
            offset_store = FileOffsetStore(config.offset_dir)
        self._store = offset_store
        self._target: tuple[int, ...] = ()
        self._generation = 0
        self._consumers: dict[int, StandaloneConsumer] = {}
        self._unprocessed: set[int] = set()
        self._dirty: set[int] = set()
        self._heartbeat_lock = asyncio.Lock()
        self._heartbeats: asyncio.Task[None] | None = None
        self._last_commit = 0.0
        self._open_retry_at = 0.0
        self._started = False
        self._closed = False

    @classmethod
    async def join(
        cls,
        server: Addresses,
        coordinator: str | Address,
        config: WorkerConfig,
        *,
        offset_store: OffsetStore | None = None,
        pool: ConnectionPool | ClusterClient | None = None,
    ) -> GroupedConsumer:
        """Create a worker and `start()` it (the Rust `GroupedConsumer::join`)."""
        worker = cls(server, coordinator, config, offset_store=offset_store, pool=pool)
        return await worker.start()

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> Self:
        """Join the group, open the assigned topics and start heartbeating.

        Raises:
            ConnectionError: The coordinator (or the server) cannot be reached.
            ProtocolError: The coordinator refused the join.
        """
        if self._started:
            return self
        await self._join()
        self._started = True
        self._last_commit = asyncio.get_running_loop().time()
        try:
            await self._sync()
        except BaseException:
            with contextlib.suppress(LanceError, OSError):
                await self.leave()
            raise
        self._heartbeats = asyncio.get_running_loop().create_task(self._heartbeat_loop())
        return self

    async def leave(self) -> None:
        """Commit processed batches, tell the coordinator, close every topic.

        Raises:
            LanceError: Committing or the LEAVE request failed (everything is closed anyway).
        """
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        try:
            if self._started:
                await self._commit_processed(self._dirty.copy())
        except (LanceError, OSError) as error:
            errors.append(error)
        if self._heartbeats is not None:
            await cancel_and_wait(self._heartbeats)
        try:
            if self._started:
                await exchange(
                    self._coordinator,
                    RequestKind.LEAVE,
                    self.config.worker_id,
                    timeout=self.config.request_timeout_s,
                )
        except LanceError as error:
            errors.append(error)
        await self._shutdown()
        if errors:
            raise errors[0]

    async def close(self) -> None:
        """`leave()`."""
        await self.leave()

    async def _shutdown(self) -> None:
        self._closed = True
        consumers = list(self._consumers.values())
        self._consumers.clear()
        for consumer in consumers:
            with contextlib.suppress(LanceError, OSError):
                await consumer.close()

    # --- state ------------------------------------------------------------------------------

    @property
    def worker_id(self) -> str:
        """This worker's id."""
        return self.config.worker_id

    @property
    def assignments(self) -> tuple[int, ...]:
        """The topics the coordinator last assigned to this worker."""
        return self._target

    @property
    def generation(self) -> int:
        """The group generation of that assignment."""
        return self._generation

    @property
    def closed(self) -> bool:
        """Whether the worker has left."""
        return self._closed

    # --- coordinator ------------------------------------------------------------------------

    async def _request(self, kind: RequestKind) -> Reply:
        return await exchange(
            self._coordinator, kind, self.config.worker_id, timeout=self.config.request_timeout_s
        )

    async def _join(self) -> None:
        reply = await self._request(RequestKind.JOIN)
        if not isinstance(reply, JoinAccepted):
            raise ProtocolError(f"coordinator refused JOIN of {self.worker_id}: {reply}")
        self._target, self._generation = reply.assignments, reply.generation
        _log.info("%s joined generation %d: %s", self.worker_id, reply.generation, self._target)

    async def heartbeat(self) -> int:
        """Send a heartbeat now; on a new generation fetch the new assignment. Returns it.

        Raises:
            LanceError: The coordinator cannot be reached or answered nonsense.
        """
        async with self._heartbeat_lock:
            reply = await self._request(RequestKind.HEARTBEAT)
            if isinstance(reply, HeartbeatAck) and reply.generation > self._generation:
                reply = await self._request(RequestKind.GET_ASSIGNMENTS)
                if isinstance(reply, Assignments):
                    self._target, self._generation = reply.assignments, reply.generation
                    _log.info(
                        "%s: generation %d: %s", self.worker_id, reply.generation, self._target
                    )
            if isinstance(reply, CoordinatorError):
                if reply.message != WORKER_NOT_FOUND:
                    raise InvalidRequestError(f"coordinator: {reply.message}")
                _log.warning("%s was dropped by the coordinator; joining again", self.worker_id)
                self._target = ()
                await self._join()
            return self._generation

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval_s)
            try:
                await self.heartbeat()
            except (LanceError, OSError) as error:
                _log.warning("%s: heartbeat failed: %s", self.worker_id, error)

    # --- topics -----------------------------------------------------------------------------

    async def _sync(self) -> None:
        """Apply the latest assignment: close revoked topics, open new ones."""
        target = set(self._target)
        for topic in [t for t in self._consumers if t not in target]:
            consumer = self._consumers.pop(topic)
            try:
                await self._commit_processed({topic} & self._dirty, consumer)
            except (LanceError, OSError) as error:
                _log.warning(
                    "%s: commit of revoked topic %d failed: %s", self.worker_id, topic, error
                )
            self._unprocessed.discard(topic)
            with contextlib.suppress(LanceError, OSError):
                await consumer.close()
        missing = [t for t in self._target if t not in self._consumers]
        loop = asyncio.get_running_loop()
        if not missing or loop.time() < self._open_retry_at:
            return
        for topic in missing:
            try:
                self._consumers[topic] = await StandaloneConsumer.connect(
                    self._server,
                    self._topic_config(topic),
                    self._store or MemoryOffsetStore(),
                    pool=self._pool,
                )
            except LanceError as error:
                self._open_retry_at = loop.time() + self.config.heartbeat_interval_s
                _log.warning("%s: cannot open topic %d: %s", self.worker_id, topic, error)

    def _topic_config(self, topic_id: int) -> StandaloneConfig:
        config = self.config
        return dataclasses.replace(
            config.consumer,
            consumer_name=config.offset_name,
            topic_id=topic_id,
            topic_name="",
            max_fetch_bytes=config.max_fetch_bytes,
            start_position=config.start_position,
            offset_dir=None,
            auto_commit_interval_s=None,
            server_side_offsets=config.server_side_offsets,
        )

    def _consumer(self, topic_id: int) -> StandaloneConsumer:
        consumer = self._consumers.get(topic_id)
        if consumer is None:
            raise InvalidRequestError(f"topic {topic_id} is not assigned to {self.worker_id}")
        return consumer

    # --- consuming --------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise ConnectionError("the worker has left the group")
        if not self._started:
            raise RuntimeError("the worker is not started: use join() or async with")

    async def next_batch(self, topic_id: int, timeout: float | None = None) -> PollResult | None:
        """Return the next records of an assigned topic, or None when none came in time.

        Applies a pending rebalance first, so a topic may stop being assigned here.

        Raises:
            InvalidRequestError: The topic is not (or no longer) assigned to this worker.
        """
        self._check_usable()
        await self._sync()
        return await self._consumer(topic_id).poll(timeout)

    async def poll(self, topic_id: int, timeout: float | None = None) -> PollResult | None:
        """`next_batch()` under its polling name."""
        return await self.next_batch(topic_id, timeout)

    async def consume(self, topic_id: int, timeout: float | None = None) -> PollResult | None:
        """`next_batch()` under the Rust client's primary name."""
        return await self.next_batch(topic_id, timeout)

    async def commit(self, topic_id: int) -> int:
        """Commit everything delivered on `topic_id`; returns the committed offset.

        Raises:
            InvalidRequestError: The topic is not assigned to this worker.
            LanceError: The server's CommitOffset failed.
        """
        self._check_usable()
        offset = await self._consumer(topic_id).commit()
        self._dirty.discard(topic_id)
        return offset

    async def commit_all(self) -> None:
        """Commit every assigned topic."""
        for topic in list(self._consumers):
            await self.commit(topic)

    async def _commit_processed(
        self, topics: set[int], consumer: StandaloneConsumer | None = None
    ) -> None:
        for topic in topics:
            target = consumer or self._consumers.get(topic)
            if target is not None and topic not in self._unprocessed:
                await target.commit()
            self._dirty.discard(topic)
        self._last_commit = asyncio.get_running_loop().time()

    async def batches(
        self, *, timeout: float | None = None, limit: int | None = None
    ) -> AsyncIterator[GroupBatch]:
        """Yield batches of all assigned topics in turn, committing processed ones.

        A batch counts as processed when the loop asks for the next one (so `break` leaves it
        uncommitted). Ends when the worker is closed or after `limit` batches.

        Args:
            timeout: How long to wait for data when no topic had any (default: the consumer
                template's `poll_timeout_s`).
            limit: Stop after this many batches (None: never).
        """
        self._check_usable()
        wait = self.config.consumer.poll_timeout_s if timeout is None else timeout
        delivered = 0
        turn = 0
        while not self._closed and (limit is None or delivered < limit):
            await self._sync()
            found = await self._next_ready(turn)
            if found is None:
                await asyncio.sleep(wait)
                continue
            topic, result, turn = found
            self._unprocessed.add(topic)
            yield GroupBatch(topic, result)
            self._unprocessed.discard(topic)
            self._dirty.add(topic)
            delivered += 1
            await self._maybe_commit()
        if not self._closed:
            await self._commit_processed(self._dirty.copy())

    async def _next_ready(self, turn: int) -> tuple[int, PollResult, int] | None:
        topics = list(self._consumers)
        for step in range(len(topics)):
            topic = topics[(turn + step) % len(topics)]
            result = await self._consumers[topic].poll(0)
            if result is not None:
                return topic, result, turn + step + 1
        return None

    async def _maybe_commit(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last_commit >= self.config.auto_commit_interval_s:
            await self._commit_processed(self._dirty.copy())
