"""`GroupCoordinator`: the TCP service that assigns a group's topics to its workers.

It speaks the Rust `lnc-client` coordinator protocol (`wire`), so Rust `GroupedConsumer`s and
Python `GroupedConsumer`s can join it alike. Data flow: a worker connects, each read of at most
4096 bytes is one request -> `wire.parse_request` -> `GroupState.handle` -> `wire.encode_reply`
-> written back; the connection stays open for further requests until the worker closes it or is
idle for `idle_timeout_s`. A checker task runs `GroupState.expire` every
`min(1 s, session_timeout_s / 4)` and, with `discover_interval_s`, re-lists the server's topics.

Topics: `GroupConfig.topics`, or when empty every topic the LWP server lists at start (the Rust
behaviour), refreshed every `discover_interval_s` when set (a new or deleted topic is a
rebalance).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from dataclasses import KW_ONLY, dataclass, field
from typing import Final, Self

from lnc_client._lifecycle import AsyncLifecycle
from lnc_client.admin import LanceClient
from lnc_client.config import Address, Addresses, ClientConfig, address_list, parse_address
from lnc_client.errors import LanceError
from lnc_client.groups.assignment import AssignmentStrategy
from lnc_client.groups.state import GroupState
from lnc_client.groups.wire import (
    MAX_MESSAGE_BYTES,
    CoordinatorError,
    Reply,
    encode_reply,
    parse_request,
)

__all__ = ["DEFAULT_COORDINATOR_PORT", "GroupConfig", "GroupCoordinator"]

_log = logging.getLogger(__name__)

DEFAULT_COORDINATOR_PORT: Final = 19920
"""The Rust `GroupConfig`'s default coordinator port."""


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """Configuration of a `GroupCoordinator` (the Rust `GroupConfig`).

    Attributes:
        group_id: Names the group.
        topics: Topic ids to share out; empty: every topic the server lists.
        assignment_strategy: How topics are spread over workers.
        session_timeout_s: A worker without a heartbeat for this long is dropped and its topics
            move to the others.
        coordinator_addr: `host:port` to listen on (port 0: an ephemeral port).
        idle_timeout_s: A worker connection that sends nothing for this long is closed.
        discover_interval_s: With no `topics`, re-list the server's topics this often (None:
            only at start, like the Rust coordinator).
        client: Connection settings (TLS, token, timeouts) for topic discovery; its address is
            replaced by the server address given to the coordinator.
    """

    group_id: str
    _: KW_ONLY
    topics: tuple[int, ...] = ()
    assignment_strategy: AssignmentStrategy = AssignmentStrategy.ROUND_ROBIN
    session_timeout_s: float = 30.0
    coordinator_addr: str = f"127.0.0.1:{DEFAULT_COORDINATOR_PORT}"
    idle_timeout_s: float = 300.0
    discover_interval_s: float | None = None
    client: ClientConfig = field(default_factory=ClientConfig)

    def __post_init__(self) -> None:
        if self.session_timeout_s <= 0 or self.idle_timeout_s <= 0:
            raise ValueError("session_timeout_s and idle_timeout_s must be positive")
        if self.discover_interval_s is not None and self.discover_interval_s <= 0:
            raise ValueError("discover_interval_s must be positive or None")
        if any(not 0 < t < 1 << 32 for t in self.topics) or len(set(self.topics)) != len(
            self.topics
        ):
            raise ValueError("topics must be distinct u32 topic ids > 0")
        parse_address(self.coordinator_addr)


class GroupCoordinator(AsyncLifecycle):
    """Tracks a group's workers by heartbeat and assigns them topics.

    `coordinator = await GroupCoordinator.start_for(server, config)`, or `async with
    GroupCoordinator(server, config) as coordinator:`; workers join at `join_address`.

    Args:
        server: The LWP server (for topic discovery); None when `config.topics` is set.
        config: The group configuration.
    """

    def __init__(self, server: Addresses | None, config: GroupConfig) -> None:
        if server is None and not config.topics:
            raise ValueError("a coordinator without topics needs a server to discover them")
        self.config = config
        self._server = None if server is None else address_list(server)
        self._state = GroupState(
            config.topics, config.assignment_strategy, config.session_timeout_s
        )
        self._listener: asyncio.Server | None = None
        self._checker: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._closed = False

    @classmethod
    async def start_for(cls, server: Addresses | None, config: GroupConfig) -> GroupCoordinator:
        """Create a coordinator and start it (the Rust `GroupCoordinator::start`)."""
        return await cls(server, config).start()

    async def start(self) -> Self:
        """Discover topics if needed, listen, and start the heartbeat checker.

        Raises:
            OSError: The coordinator address cannot be bound.
            LanceError: Topic discovery failed.
        """
        if self._listener is not None:
            return self
        if not self.config.topics:
            self._state.set_topics(await self._discover())
        address = parse_address(self.config.coordinator_addr)
        self._listener = await asyncio.start_server(
            self._serve, address.host, address.port, limit=MAX_MESSAGE_BYTES
        )
        self._checker = asyncio.get_running_loop().create_task(self._check())
        _log.info("group %s coordinator on %s", self.config.group_id, self.join_address)
        return self

    async def close(self) -> None:
        """Stop listening, drop every worker connection and stop the checker."""
        if self._closed:
            return
        self._closed = True
        tasks = [*self._connections, *([self._checker] if self._checker else [])]
        for task in tasks:
            task.cancel()
        if self._listener is not None:
            self._listener.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._listener is not None:
            await self._listener.wait_closed()

    async def stop(self) -> None:
        """`close()` under the Rust name."""
        await self.close()

    @property
    def join_address(self) -> str:
        """`host:port` workers connect to (the bound port when the config asked for 0)."""
        if self._listener is None:
            raise RuntimeError("the coordinator is not started")
        host, port = self._listener.sockets[0].getsockname()[:2]
        return str(Address(host, port))

    @property
    def generation(self) -> int:
        """The group generation: it grows by one with every rebalance."""
        return self._state.generation

    @property
    def worker_count(self) -> int:
        """How many workers are in the group."""
        return len(self._state.assignments())

    @property
    def topics(self) -> tuple[int, ...]:
        """The topics being shared out."""
        return self._state.topics

    def get_assignments(self) -> dict[str, tuple[int, ...]]:
        """Every worker's topics."""
        return self._state.assignments()

    # --- internals --------------------------------------------------------------------------

    async def _discover(self) -> list[int]:
        assert self._server is not None
        async with LanceClient(self._server, self.config.client) as client:
            topics = await client.list_topics()
        return sorted(topic.id for topic in topics)

    async def _check(self) -> None:
        loop = asyncio.get_running_loop()
        period = min(1.0, self.config.session_timeout_s / 4)
        next_discovery = loop.time() + (self.config.discover_interval_s or 0.0)
        while True:
            await asyncio.sleep(period)
            dead = self._state.expire(loop.time())
            if dead:
                _log.warning(
                    "group %s: workers %s timed out; generation %d",
                    self.config.group_id,
                    dead,
                    self._state.generation,
                )
            interval = self.config.discover_interval_s
            if interval is not None and not self.config.topics and loop.time() >= next_discovery:
                next_discovery = loop.time() + interval
                try:
                    self._state.set_topics(await self._discover())
                except (LanceError, OSError) as error:
                    _log.warning(
                        "group %s: topic discovery failed: %s", self.config.group_id, error
                    )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        loop = asyncio.get_running_loop()
        try:
            while True:
                async with asyncio.timeout(self.config.idle_timeout_s):
                    data = await reader.read(MAX_MESSAGE_BYTES)
                if not data:
                    return
                parsed = parse_request(data)
                reply: Reply = (
                    parsed
                    if isinstance(parsed, CoordinatorError)
                    else self._state.handle(parsed, loop.time())
                )
                writer.write(encode_reply(reply))
                async with asyncio.timeout(self.config.idle_timeout_s):
                    await writer.drain()
        except (OSError, UnicodeDecodeError, builtins.TimeoutError) as error:
            _log.debug("group %s: worker connection closed: %r", self.config.group_id, error)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
