"""`LanceClient`: the admin client for topics, retention, cluster status and server offsets.

Data flow: every public method turns its arguments into typed operations of `operations`
(topic names are checked against the server's rule before anything is sent) and runs them
through a `ConnectionManager`, which connects lazily, reconnects with backoff and retries
retryable failures. One public call has one deadline, `ClientConfig.request_timeout_s` from its
start, shared by all its requests (a name lookup, then the operation); only `ensure_topic`
bounds each of its attempts instead. The typed results are the frozen values of
`protocol.control` (`TopicInfo`, `ClusterStatus`, `SubscribeAck`, `CommitAck`, ...).

Retries and the three operations that are not idempotent. A retry after a lost connection (or
a retryable error) may repeat a request the server already carried out. For CreateTopic,
CreateTopicWithRetention and DeleteTopic the repeat fails ("already exists", "not found") where
the first one succeeded, so on a retry that answer counts as success: the created topic is
looked up by name (and given the requested retention with SetRetention), the deleted id is
returned. On a first attempt these errors are raised as usual.

Topic arguments accept an id, a name or a `TopicInfo`. A name is resolved with ListTopics on
every call (no cache, so a deleted and re-created topic is never addressed by a stale id).

Retention: on the real server 0 is a limit, not "unlimited" (PROTOCOL.md §7: max_bytes 0 deletes
every closed segment). So a limit left out of `set_retention` or `create_topic_with_retention`
is sent as `NO_LIMIT` (u64::MAX), and only an explicit 0 means 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Final, Self, TypeVar

from lnc_client import operations
from lnc_client._lifecycle import AsyncLifecycle
from lnc_client.config import (
    Addresses,
    ClientConfig,
    ReconnectConfig,
    address_list,
    parse_address,
)
from lnc_client.connection import Connection
from lnc_client.discovery import ClusterClient
from lnc_client.errors import (
    LanceError,
    ServerCatchingUpError,
    TimeoutError,
    TopicAlreadyExistsError,
    TopicNotFoundError,
    validate_topic_name,
)
from lnc_client.metrics import ClientMetrics
from lnc_client.pool import ConnectionPool
from lnc_client.protocol.control import (
    ClusterStatus,
    CommitAck,
    FetchResult,
    RetentionInfo,
    SubscribeAck,
    TopicInfo,
)
from lnc_client.reconnect import ConnectionManager, ConnectionWatch

__all__ = ["NO_LIMIT", "LanceClient", "TopicRef"]

NO_LIMIT: Final = 0xFFFF_FFFF_FFFF_FFFF
"""The retention value meaning "no limit" (u64::MAX); 0 is a real limit on the server.

As an age it relies on the real server's release build: `max_age_secs * 10**9` wraps there
(to about 584 years), while a debug build would panic (docs/client.md, Retention).
"""

_U32_MAX: Final = 0xFFFF_FFFF

TopicRef = int | str | TopicInfo
"""A topic given by id, by name, or as a `TopicInfo` (its id is used)."""

T = TypeVar("T")

_deadline: ContextVar[float | None] = ContextVar("lnc_admin_deadline", default=None)
"""The loop time by which the public call in progress (in this task) must be done."""


def _limit(value: int | None, what: str) -> int:
    if value is None:
        return NO_LIMIT
    if type(value) is not int or not 0 <= value <= NO_LIMIT:
        raise ValueError(f"{what} must be an int in 0..2**64-1 (or None for no limit)")
    return value


def _u64(value: int, what: str) -> int:
    if type(value) is not int or not 0 <= value <= NO_LIMIT:
        raise ValueError(f"{what} must be an int in 0..2**64-1, not {value!r}")
    return value


@contextmanager
def _one_deadline(timeout_s: float) -> Iterator[None]:
    """Give every request made inside (in this task) the deadline of the outermost call."""
    if _deadline.get() is not None:
        yield
        return
    token = _deadline.set(asyncio.get_running_loop().time() + timeout_s)
    try:
        yield
    finally:
        _deadline.reset(token)


def _id_of(topic: int | TopicInfo) -> int:
    """The id of a topic given by id or `TopicInfo`, checked to be a u32."""
    topic_id = topic.id if isinstance(topic, TopicInfo) else topic
    if type(topic_id) is not int or not 0 <= topic_id <= _U32_MAX:
        raise ValueError(f"a topic id is an int in 0..2**32-1, not {topic_id!r}")
    return topic_id


def _client_config(
    address: Addresses | ClientConfig | None, config: ClientConfig | None
) -> ClientConfig:
    """The config of a `LanceClient(address, config)`: addresses replace its host, port, seeds."""
    if isinstance(address, ClientConfig):
        if config is not None:
            raise TypeError("give the ClientConfig once")
        address, config = None, address
    config = config or ClientConfig()
    if address is not None:
        first, *rest = (parse_address(item) for item in address_list(address))
        more = (*(str(item) for item in rest), *config.seeds)
        config = replace(config, host=first.host, port=first.port, seeds=more)
    return config


class LanceClient(AsyncLifecycle, ConnectionWatch):
    """Admin client: topic management, retention, cluster status and server-side offsets.

    Use it as `async with LanceClient("127.0.0.1:1992") as client: ...` (or with a
    `ClientConfig(host=..., port=...)`), or call `connect()` and `close()` yourself. Operations
    connect on demand, reconnect after a lost connection and retry retryable errors, all within
    `config.request_timeout_s` per call.

    Args:
        address: `host:port`, `[v6]:port`, a bare host, or a list of them (seeds), which replace
            the config's host and port; or the `ClientConfig` itself (the 0.2.9 form).
        config: Timeouts, TLS, auth token and reconnect policy (defaults if None).
        pool: Borrow the connection from this `ConnectionPool` (or `ClusterClient`, whose
            discovery then ranks the seeds) and give it back on close.
    """

    def __init__(
        self,
        address: Addresses | ClientConfig | None = None,
        config: ClientConfig | None = None,
        *,
        pool: ConnectionPool | ClusterClient | None = None,
    ) -> None:
        self.config = _client_config(address, config)
        self._manager = ConnectionManager(
            self.config.addresses(),
            self.config.connection_options(),
            self.config.reconnect,
            auto_reconnect=self.config.auto_reconnect,
            pool=pool,
        )

    # --- lifecycle ------------------------------------------------------------------------

    async def connect(self) -> Self:
        """Connect now (operations would otherwise connect on first use).

        Raises:
            ConnectionError: No server could be reached.
            TimeoutError: Not connected within `connect_timeout_s`.
            AuthenticationError: The server refused the token.
        """
        deadline = asyncio.get_running_loop().time() + self.config.connect_timeout_s
        await self._manager.get(deadline=deadline)
        return self

    async def start(self) -> Self:
        """`connect()`, under the name the Producer and the consumer use (and `async with`)."""
        return await self.connect()

    async def close(self) -> None:
        """Close the connection; later operations raise `ConnectionError`."""
        await self._manager.close()

    @property
    def reconnects(self) -> int:
        """How many times the connection has been re-established."""
        return self._manager.reconnects

    def metrics(self) -> ClientMetrics:
        """Return a snapshot of the counters (requests, errors, retries, latency)."""
        stats = self._manager.stats
        return ClientMetrics(
            stats.requests, stats.errors, stats.retries, self.reconnects, stats.latency.snapshot()
        )

    async def _call(self, operation: Callable[[Connection], Awaitable[T]]) -> T:
        deadline = _deadline.get()
        if deadline is None:
            return await self._manager.call(operation, timeout=self.config.request_timeout_s)
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TimeoutError(f"the call took longer than {self.config.request_timeout_s} s")
        return await self._manager.call(operation, timeout=remaining)

    # --- topics ---------------------------------------------------------------------------

    async def create_topic(self, name: str, *, timeout: float | None = None) -> TopicInfo:
        """Create a topic, or return the existing one of that name (= `ensure_topic`).

        Args:
            name: Topic name (`[A-Za-z0-9-]+`).
            timeout: One deadline for the whole call, retries included (default
                `config.request_timeout_s`).

        Raises:
            InvalidTopicNameError: The name breaks the server's rule (nothing is sent).
            TimeoutError: The deadline passed.
        """
        return await self.ensure_topic(name, timeout=timeout)

    async def create_topic_once(self, name: str) -> TopicInfo:
        """Create a topic; fail if one of that name exists.

        Raises:
            InvalidTopicNameError: The name breaks the server's rule (nothing is sent).
            TopicAlreadyExistsError: The topic exists (standalone server).
        """
        validate_topic_name(name)
        return await _not_idempotent(
            self._call,
            lambda conn: operations.create_topic(conn, name),
            TopicAlreadyExistsError,
            lambda conn, error: _created_by_us(conn, name, error),
        )

    async def ensure_topic(
        self,
        name: str,
        max_attempts: int = 20,
        base_backoff_ms: int = 500,
        *,
        timeout: float | None = None,
    ) -> TopicInfo:
        """Create the topic if needed and return it; retries transient failures.

        On "already exists" the existing topic is looked up and returned. A retryable failure
        (lost connection, FORWARD_FAILED, ...) is retried after an exponential backoff with
        jitter starting at `base_backoff_ms`, up to `max_attempts` attempts in all, and all of
        it within one deadline.

        Args:
            name: Topic name (`[A-Za-z0-9-]+`).
            max_attempts: Attempts at most (>= 1).
            base_backoff_ms: First backoff delay.
            timeout: One deadline for the whole call, retries and backoff included (default
                `config.request_timeout_s`).

        Raises:
            InvalidTopicNameError: The name breaks the server's rule (nothing is sent).
            TimeoutError: The deadline passed.
            LanceError: A non-retryable error, or the last error once attempts are used up.
        """
        with _one_deadline(self.config.request_timeout_s if timeout is None else timeout):
            return await self._ensure_topic(name, max_attempts, base_backoff_ms)

    async def _ensure_topic(self, name: str, max_attempts: int, base_backoff_ms: int) -> TopicInfo:
        validate_topic_name(name)
        if max_attempts < 1 or base_backoff_ms < 0:
            raise ValueError("need max_attempts >= 1 and base_backoff_ms >= 0")
        backoff = ReconnectConfig(
            base_delay_ms=base_backoff_ms,
            max_delay_ms=max(base_backoff_ms, self.config.reconnect.max_delay_ms),
            jitter_factor=self.config.reconnect.jitter_factor,
        )
        last: LanceError | None = None
        deadline = _deadline.get()
        assert deadline is not None
        loop = asyncio.get_running_loop()
        for attempt in range(max_attempts):
            if attempt:
                delay = backoff.delay_for_attempt(attempt - 1)
                if loop.time() + delay >= deadline:
                    raise TimeoutError(f"creating topic {name!r} ran out of time: {last}")
                await asyncio.sleep(delay)
            try:
                return await self.create_topic_once(name)
            except TopicAlreadyExistsError as error:
                existing = await self._find_topic(name)
                if existing is not None:
                    return existing
                last = error
            except LanceError as error:
                if not error.retryable:
                    raise
                last = error
        assert last is not None
        raise last

    async def ensure_topic_default(self, name: str) -> TopicInfo:
        """`ensure_topic` with its default attempts and backoff (lnc-client 0.2.9 name)."""
        return await self.ensure_topic(name)

    async def create_topic_with_retention(
        self, name: str, *, max_age_secs: int | None = None, max_bytes: int | None = None
    ) -> TopicInfo:
        """Create a topic with retention limits.

        Args:
            name: Topic name (`[A-Za-z0-9-]+`).
            max_age_secs: Delete closed segments older than this; None (default) = no limit.
            max_bytes: Keep the topic at most this big; None (default) = no limit. 0 deletes
                every closed segment on the server: it is not "unlimited".

        Returns:
            The topic, with the retention the server echoed.

        Raises:
            InvalidTopicNameError: The name breaks the server's rule (nothing is sent).
            TopicAlreadyExistsError: A topic of that name exists.
        """
        validate_topic_name(name)
        age = _limit(max_age_secs, "max_age_secs")
        size = _limit(max_bytes, "max_bytes")

        async def recover(conn: Connection, error: LanceError) -> TopicInfo:
            topic = await _created_by_us(conn, name, error)
            stored = await operations.set_retention(conn, topic.id, age, size)
            return replace(topic, retention=RetentionInfo(stored.max_age_secs, stored.max_bytes))

        return await _not_idempotent(
            self._call,
            lambda conn: operations.create_topic_with_retention(conn, name, age, size),
            TopicAlreadyExistsError,
            recover,
        )

    async def list_topics(self) -> list[TopicInfo]:
        """Return every topic, sorted by id (retention is never reported by the server)."""
        return await self._call(operations.list_topics)

    async def get_topic(self, topic: TopicRef) -> TopicInfo:
        """Return one topic by id, name or `TopicInfo`.

        Raises:
            TopicNotFoundError: No such topic.
        """
        if isinstance(topic, str):
            return await self.get_topic_by_name(topic)
        topic_id = _id_of(topic)
        return await self._call(lambda conn: operations.get_topic(conn, topic_id))

    async def get_topic_by_name(self, name: str) -> TopicInfo:
        """Return the topic called `name`.

        Raises:
            InvalidTopicNameError: The name breaks the server's rule (nothing is sent).
            TopicNotFoundError: No such topic (its `topic_id` is the name).
        """
        validate_topic_name(name)
        topic = await self._find_topic(name)
        if topic is None:
            raise TopicNotFoundError(name)
        return topic

    async def resolve_topic_id(self, name: str) -> int:
        """Return the id of the topic called `name`.

        Raises:
            TopicNotFoundError: No such topic.
        """
        return (await self.get_topic_by_name(name)).id

    async def delete_topic(self, topic: TopicRef) -> int:
        """Delete a topic; returns the deleted id.

        Raises:
            TopicNotFoundError: No such topic.
        """
        with _one_deadline(self.config.request_timeout_s):
            topic_id = await self.topic_id(topic)

            async def gone_already(conn: Connection, error: LanceError) -> int:
                return topic_id

            return await _not_idempotent(
                self._call,
                lambda conn: operations.delete_topic(conn, topic_id),
                TopicNotFoundError,
                gone_already,
            )

    async def set_retention(
        self,
        topic: TopicRef,
        *,
        max_age_secs: int | None = None,
        max_bytes: int | None = None,
    ) -> TopicInfo:
        """Set a topic's retention limits; a limit left out means no limit (u64::MAX).

        Args:
            topic: The topic (id, name or `TopicInfo`).
            max_age_secs: Delete closed segments older than this; None = no limit.
            max_bytes: Keep the topic at most this big; None = no limit. 0 deletes every
                closed segment on the server.

        Returns:
            The topic (name, creation time) with the retention the server stored.

        Raises:
            TopicNotFoundError: No such topic.
        """
        age = _limit(max_age_secs, "max_age_secs")
        size = _limit(max_bytes, "max_bytes")
        with _one_deadline(self.config.request_timeout_s):
            info = await self.get_topic(topic)
            stored = await self._call(
                lambda conn: operations.set_retention(conn, info.id, age, size)
            )
        return replace(info, retention=RetentionInfo(stored.max_age_secs, stored.max_bytes))

    async def topic_id(self, topic: TopicRef) -> int:
        """Return the id of a topic given by id, name or `TopicInfo` (names are looked up).

        Raises:
            TopicNotFoundError: A name that no topic has.
        """
        if isinstance(topic, str):
            return await self.resolve_topic_id(topic)
        return _id_of(topic)

    async def _find_topic(self, name: str) -> TopicInfo | None:
        topics = await self.list_topics()
        return next((topic for topic in topics if topic.name == name), None)

    # --- cluster, keepalive ---------------------------------------------------------------

    async def get_cluster_status(self) -> ClusterStatus:
        """Return the answering node's view of the cluster (GetClusterStatus)."""
        return await self._call(operations.cluster_status)

    async def ping(self) -> float:
        """Send a keepalive and return the round-trip time in seconds."""
        return await self._call(lambda conn: conn.ping())

    # --- data position and server-side offsets ---------------------------------------------

    async def fetch(self, topic: TopicRef, offset: int, max_bytes: int) -> FetchResult:
        """Fetch one raw window of at most `max_bytes` from byte offset `offset`.

        The window may start or end inside a record (decode it with
        `protocol.records.decode_stream`, which keeps the partial tail).

        Raises:
            ServerCatchingUpError: The offset lies past the end of the topic.
            TopicNotFoundError: No such topic.
        """
        start = _u64(offset, "offset")
        if type(max_bytes) is not int or not 0 < max_bytes <= _U32_MAX:
            raise ValueError("max_bytes must be an int in 1..2**32-1")

        async def fetch_once(
            conn: Connection, topic_id: int
        ) -> FetchResult | ServerCatchingUpError:
            try:
                return await operations.fetch(conn, topic_id, start, max_bytes)
            except ServerCatchingUpError as error:
                return error  # an answer for this caller, not a reason to retry

        result = await self._call_on_topic(topic, fetch_once)
        if isinstance(result, ServerCatchingUpError):
            raise result
        return result

    async def end_offset(self, topic: TopicRef) -> int:
        """Return the topic's end offset (its total stored bytes)."""
        return await self._call_on_topic(topic, operations.end_offset)

    async def subscribe(
        self, topic: TopicRef, start_offset: int, max_batch_bytes: int, consumer_id: int
    ) -> SubscribeAck:
        """Register a subscription (bookkeeping only: the server never pushes data).

        Returns:
            The consumer id and the offset the server holds (a committed offset replaces a
            requested 0).
        """
        start = _u64(start_offset, "start_offset")
        consumer = _u64(consumer_id, "consumer_id")
        if type(max_batch_bytes) is not int or not 0 <= max_batch_bytes <= _U32_MAX:
            raise ValueError("max_batch_bytes must be an int in 0..2**32-1")
        return await self._call_on_topic(
            topic,
            lambda conn, topic_id: operations.subscribe(
                conn, topic_id, start, max_batch_bytes, consumer
            ),
        )

    async def unsubscribe(self, topic: TopicRef, consumer_id: int) -> None:
        """Remove a subscription (the server answers with an Ack frame)."""
        consumer = _u64(consumer_id, "consumer_id")
        await self._call_on_topic(
            topic, lambda conn, topic_id: operations.unsubscribe(conn, topic_id, consumer)
        )

    async def commit_offset(self, topic: TopicRef, consumer_id: int, offset: int) -> CommitAck:
        """Store a consumer's offset on the server (in its memory: not durable there)."""
        consumer = _u64(consumer_id, "consumer_id")
        position = _u64(offset, "offset")
        return await self._call_on_topic(
            topic,
            lambda conn, topic_id: operations.commit_offset(conn, topic_id, consumer, position),
        )

    async def _call_on_topic(
        self, topic: TopicRef, operation: Callable[[Connection, int], Awaitable[T]]
    ) -> T:
        """Resolve `topic` and run `operation(conn, topic_id)`, both within one deadline."""
        with _one_deadline(self.config.request_timeout_s):
            topic_id = await self.topic_id(topic)
            return await self._call(lambda conn: operation(conn, topic_id))


async def _not_idempotent(
    call: Callable[[Callable[[Connection], Awaitable[T]]], Awaitable[T]],
    operation: Callable[[Connection], Awaitable[T]],
    done_already: type[LanceError],
    recover: Callable[[Connection, LanceError], Awaitable[T]],
) -> T:
    """Run `operation` through `call`; on a retry, `done_already` means an earlier try did it.

    A retry happens after a failure that may have reached the server (a lost connection, a
    timeout, FORWARD_FAILED, ...); then `recover` builds the result from the server's current
    state, or raises the error again.
    """
    attempts = 0

    async def attempt(conn: Connection) -> T:
        nonlocal attempts
        attempts += 1
        try:
            return await operation(conn)
        except done_already as error:
            if attempts == 1:
                raise
            return await recover(conn, error)

    return await call(attempt)


async def _created_by_us(conn: Connection, name: str, error: LanceError) -> TopicInfo:
    """The topic `name`, which an earlier attempt created; `error` again if it is gone."""
    topics = await operations.list_topics(conn)
    found = next((topic for topic in topics if topic.name == name), None)
    if found is None:
        raise error
    return found
