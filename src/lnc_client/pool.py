"""`ConnectionPool`: several LWP connections per server address, reused, checked and retired.

The Rust client's `ConnectionPool` (`lnc-client/src/connection.rs`), for any number of
addresses. Data flow: `acquire(address)` waits (under `acquire_timeout_s`, one deadline for the
wait and the connect) for one of the address's `max_connections` permits, then takes the most
recently used idle connection that is still open, within `max_lifetime_s` and used within
`idle_timeout_s`, or opens a new one (`Connection.open`, so TLS and the auth token apply).
`PooledConnection.release()` (or leaving `async with pool.connection(address)`) puts it back
unless it was marked unhealthy, closed, or has outlived `max_lifetime_s`.

A health task runs every `health_check_interval_s`: it takes the idle connections out, closes
the expired and the long idle ones, sends a keepalive to each of the others (`Connection.ping`,
bounded by the connection's request timeout) and puts back those that answer. A connection in
use is never checked, so a check can never interleave with a caller's requests.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import KW_ONLY, dataclass, field
from types import TracebackType
from typing import Self

from lnc_client._lifecycle import AsyncLifecycle, cancel_and_wait
from lnc_client.config import Address, ConnectionOptions, parse_address
from lnc_client.connection import Connection
from lnc_client.errors import ConnectionError, LanceError, TimeoutError

__all__ = ["ConnectionPool", "PoolConfig", "PoolStats", "PooledConnection"]


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """Configuration of a `ConnectionPool` (the Rust `ConnectionPoolConfig`).

    Attributes:
        max_connections: Connections per address, in use and idle together.
        acquire_timeout_s: Bound on `acquire()`: waiting for a permit plus connecting.
        health_check_interval_s: How often idle connections are checked; 0 disables.
        max_lifetime_s: A connection older than this is closed instead of reused; 0: no limit.
        idle_timeout_s: An idle connection unused for this long is closed; 0: no limit.
        connection: Connect timeout, TLS, auth token and request timeout of each connection.
    """

    _: KW_ONLY
    max_connections: int = 10
    acquire_timeout_s: float = 30.0
    health_check_interval_s: float = 30.0
    max_lifetime_s: float = 3600.0
    idle_timeout_s: float = 300.0
    connection: ConnectionOptions = field(default_factory=ConnectionOptions)

    def __post_init__(self) -> None:
        if self.max_connections < 1 or self.acquire_timeout_s <= 0:
            raise ValueError("need max_connections >= 1 and acquire_timeout_s > 0")
        if min(self.health_check_interval_s, self.max_lifetime_s, self.idle_timeout_s) < 0:
            raise ValueError("intervals and limits are >= 0 (0 disables)")


@dataclass(frozen=True, slots=True)
class PoolStats:
    """Counters of a pool (the Rust `PoolStats`)."""

    connections_created: int
    connections_closed: int
    active_connections: int
    idle_connections: int
    acquire_attempts: int
    acquire_successes: int
    acquire_failures: int
    health_check_failures: int


@dataclass(slots=True)
class _Slot:
    connection: Connection
    created_at: float
    last_used: float


class _AddressPool:
    def __init__(self, limit: int) -> None:
        self.permits = asyncio.Semaphore(limit)
        self.idle: deque[_Slot] = deque()


class PooledConnection:
    """A connection lent by a pool: `release()` it, or `async with lent as conn:`."""

    def __init__(self, pool: ConnectionPool, address: Address, slot: _Slot) -> None:
        self._pool = pool
        self._slot: _Slot | None = slot
        self.address = address
        self.connection = slot.connection
        self._healthy = True

    def mark_unhealthy(self) -> None:
        """Close the connection on release instead of reusing it."""
        self._healthy = False

    async def release(self) -> None:
        """Return the connection to the pool (or close it); a second call does nothing."""
        slot, self._slot = self._slot, None
        if slot is not None:
            await self._pool._give_back(self.address, slot, healthy=self._healthy)

    async def __aenter__(self) -> Connection:
        return self.connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Release; a block that raised retires the connection instead."""
        if exc is not None:
            self.mark_unhealthy()
        await self.release()


class ConnectionPool(AsyncLifecycle):
    """Pools connections per address; `async with ConnectionPool(config) as pool:`.

    Args:
        config: Limits, timeouts and connection options (defaults if None).
    """

    def __init__(self, config: PoolConfig | None = None) -> None:
        self.config = config or PoolConfig()
        self._pools: dict[Address, _AddressPool] = {}
        self._health: asyncio.Task[None] | None = None
        self._closed = False
        self._created = self._closed_count = self._attempts = self._successes = 0
        self._failures = self._health_failures = self._active = 0

    async def start(self) -> Self:
        """Start the health-check task (when enabled)."""
        interval = self.config.health_check_interval_s
        if self._health is None and interval > 0 and not self._closed:
            self._health = asyncio.get_running_loop().create_task(self._health_loop(interval))
        return self

    async def close(self) -> None:
        """Stop health checks and close every idle connection; lent ones close on release."""
        self._closed = True
        if self._health is not None:
            await cancel_and_wait(self._health)
        for pool in self._pools.values():
            while pool.idle:
                await self._retire(pool.idle.popleft())

    @property
    def stats(self) -> PoolStats:
        """The pool's counters now."""
        return PoolStats(
            connections_created=self._created,
            connections_closed=self._closed_count,
            active_connections=self._active,
            idle_connections=sum(len(p.idle) for p in self._pools.values()),
            acquire_attempts=self._attempts,
            acquire_successes=self._successes,
            acquire_failures=self._failures,
            health_check_failures=self._health_failures,
        )

    def _usable(self, slot: _Slot, now: float) -> bool:
        config = self.config
        return (
            slot.connection.is_open
            # a batch still awaiting its Ack belongs to the last borrower: its id could clash
            # with the next borrower's (every producer numbers from 1)
            and not slot.connection.in_flight
            and not (config.max_lifetime_s and now - slot.created_at > config.max_lifetime_s)
            and not (config.idle_timeout_s and now - slot.last_used > config.idle_timeout_s)
        )

    async def acquire(self, address: str | Address) -> PooledConnection:
        """Lend a connection to `address`: an idle one that is still usable, or a new one.

        Raises:
            TimeoutError: No permit and connection within `acquire_timeout_s`.
            ConnectionError: The pool is closed, or the server could not be reached.
            AuthenticationError: The server refused the token.
        """
        if self._closed:
            raise ConnectionError("the pool is closed")
        target = parse_address(address)
        pool = self._pools.setdefault(target, _AddressPool(self.config.max_connections))
        self._attempts += 1
        loop = asyncio.get_running_loop()
        permit = False
        try:
            async with asyncio.timeout(self.config.acquire_timeout_s):
                await pool.permits.acquire()
                permit = True
                slot = await self._idle_or_new(pool, target, loop)
        except builtins.TimeoutError as error:
            self._failed(pool, permit)
            if isinstance(error, LanceError):
                raise
            raise TimeoutError(
                f"no connection to {target} within {self.config.acquire_timeout_s} s"
            ) from None
        except BaseException:
            self._failed(pool, permit)
            raise
        self._active += 1
        self._successes += 1
        return PooledConnection(self, target, slot)

    def _failed(self, pool: _AddressPool, permit: bool) -> None:
        self._failures += 1
        if permit:
            pool.permits.release()

    async def _idle_or_new(
        self, pool: _AddressPool, target: Address, loop: asyncio.AbstractEventLoop
    ) -> _Slot:
        now = loop.time()
        while pool.idle:
            slot = pool.idle.pop()
            if self._usable(slot, now):
                slot.last_used = now
                return slot
            await self._retire(slot)
        options = self.config.connection
        connection = await Connection.open(target, options)
        self._created += 1
        return _Slot(connection, loop.time(), loop.time())

    @contextlib.asynccontextmanager
    async def connection(self, address: str | Address) -> AsyncIterator[Connection]:
        """`async with pool.connection(address) as conn:`; a failed block retires `conn`."""
        async with await self.acquire(address) as conn:
            yield conn

    async def _give_back(self, address: Address, slot: _Slot, *, healthy: bool) -> None:
        pool = self._pools[address]
        self._active -= 1
        pool.permits.release()
        now = asyncio.get_running_loop().time()
        slot.last_used = now
        if healthy and not self._closed and self._usable(slot, now):
            pool.idle.append(slot)
        else:
            await self._retire(slot)

    async def _retire(self, slot: _Slot) -> None:
        self._closed_count += 1
        await slot.connection.close()

    async def check_health(self) -> int:
        """Run one health check now; returns how many idle connections were closed."""
        now = asyncio.get_running_loop().time()
        closed = 0
        for pool in self._pools.values():
            slots = list(pool.idle)
            pool.idle.clear()
            usable = [slot for slot in slots if self._usable(slot, now)]
            results = await asyncio.gather(
                *(slot.connection.ping() for slot in usable), return_exceptions=True
            )
            alive = []
            for slot, result in zip(usable, results, strict=True):
                if isinstance(result, BaseException):
                    if not isinstance(result, LanceError):
                        raise result
                    self._health_failures += 1
                else:
                    alive.append(slot)
            for slot in slots:
                if slot not in alive:
                    closed += 1
                    await self._retire(slot)
            pool.idle.extendleft(reversed(alive))
        return closed

    async def _health_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.check_health()
