"""Cluster discovery: rank a seed list by what the nodes say in GetClusterStatus.

The Rust `ClusterClient` (`lnc-client/src/connection.rs`) asks a seed for the cluster status and
tries to read a peer's entry in `peer_states` as a socket address. The real server sends a state
word there (`Connected`, `Failed`, ...; PROTOCOL.md §4.3, §8), so that never finds a node. No
reply carries addresses, so here discovery works from what the replies do carry:

1. `refresh()` asks every seed (through a `ConnectionPool`, concurrently, each bounded by the
   connection's request timeout) for its status.
2. `rank_seeds` orders them: the node that says it leads first; then the others that answered
   and that no answering leader reports `Failed` or `Disconnected`; then the other answering
   nodes; then seeds that did not answer (kept, to be tried last and asked again next time).
   A `peer_states` value that parses as `host:port` (a server that did send addresses) is added
   after the answering nodes.
3. `addresses` is that order; a client tries it in turn. A background task refreshes it every
   `refresh_interval_s`.

`ClusterClient` puts the two together: `async with cluster.connection() as conn:` lends a pooled
connection to the first address of the current ranking that accepts one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Self

from lnc_client import operations
from lnc_client._lifecycle import AsyncLifecycle, cancel_and_wait
from lnc_client.config import Address, Addresses, address_list, parse_address
from lnc_client.connection import Connection
from lnc_client.errors import ConnectionError, LanceError
from lnc_client.pool import ConnectionPool, PoolConfig, PooledConnection
from lnc_client.protocol.control import ClusterStatus

__all__ = ["ClusterClient", "ClusterDiscovery", "NodeInfo", "rank_seeds"]

_log = logging.getLogger(__name__)
_DOWN: Final = frozenset({"Failed", "Disconnected"})


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What one seed said: its status, or None when it did not answer."""

    address: Address
    status: ClusterStatus | None

    @property
    def answered(self) -> bool:
        """Whether the node answered GetClusterStatus."""
        return self.status is not None


def _as_address(text: str) -> Address | None:
    if ":" not in text:
        return None
    try:
        return parse_address(text)
    except ValueError:
        return None


def rank_seeds(
    seeds: Sequence[Address], statuses: Mapping[Address, ClusterStatus | None]
) -> tuple[Address, ...]:
    """Order seeds for connecting (see the module docstring); every seed stays in the list."""
    answered = [a for a in seeds if statuses.get(a) is not None]
    leaders = [a for a in answered if (s := statuses[a]) is not None and s.is_leader]
    down_ids: set[str] = set()
    extra: list[Address] = []
    for address in answered:
        status = statuses[address]
        assert status is not None
        for peer, state in status.peer_states.items():
            if status.is_leader and state in _DOWN:
                down_ids.add(peer)
            found = _as_address(state)
            if found is not None and found not in seeds and found not in extra:
                extra.append(found)

    def healthy(address: Address) -> bool:
        status = statuses[address]
        return status is not None and str(status.node_id) not in down_ids

    others = [a for a in answered if a not in leaders]
    ranked = [
        *leaders,
        *(a for a in others if healthy(a)),
        *(a for a in others if not healthy(a)),
        *extra,
        *(a for a in seeds if a not in answered),
    ]
    return tuple(dict.fromkeys(ranked))


class ClusterDiscovery(AsyncLifecycle):
    """A seed list kept ranked by GetClusterStatus (see the module docstring).

    Args:
        seeds: Known node addresses (`host:port`, `[v6]:port`, a bare host, or a list).
        pool: Where connections come from (shared with `ClusterClient`).
        refresh_interval_s: Background refresh period; 0: only explicit `refresh()` calls.
    """

    def __init__(
        self,
        seeds: Addresses,
        pool: ConnectionPool,
        *,
        refresh_interval_s: float = 60.0,
    ) -> None:
        self._seeds = tuple(dict.fromkeys(parse_address(s) for s in address_list(seeds)))
        if not self._seeds:
            raise ValueError("cluster discovery needs at least one seed address")
        self._pool = pool
        self._interval = refresh_interval_s
        self._nodes: tuple[NodeInfo, ...] = ()
        self._addresses = self._seeds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Self:
        """Refresh once, then keep refreshing in the background."""
        await self.refresh()
        if self._task is None and self._interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    async def close(self) -> None:
        """Stop the background refresh (the pool is the caller's)."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    @property
    def addresses(self) -> tuple[Address, ...]:
        """The seeds (and any addresses found), best first."""
        return self._addresses

    @property
    def nodes(self) -> tuple[NodeInfo, ...]:
        """What each known address said at the last refresh."""
        return self._nodes

    @property
    def leader(self) -> Address | None:
        """The address of the node that said it leads, if any answered so."""
        return next((n.address for n in self._nodes if n.status and n.status.is_leader), None)

    async def refresh(self) -> tuple[Address, ...]:
        """Ask every known address for its status now and re-rank; returns the new order."""
        known = tuple(dict.fromkeys((*self._seeds, *self._addresses)))
        statuses = await asyncio.gather(*(self._status(a) for a in known))
        by_address = dict(zip(known, statuses, strict=True))
        self._nodes = tuple(NodeInfo(a, s) for a, s in by_address.items())
        self._addresses = rank_seeds(known, by_address)
        return self._addresses

    async def _status(self, address: Address) -> ClusterStatus | None:
        try:
            async with self._pool.connection(address) as conn:
                return await operations.cluster_status(conn)
        except LanceError as error:
            _log.debug("cluster status from %s failed: %s", address, error)
            return None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.refresh()


class ClusterClient(AsyncLifecycle):
    """Pooled connections to the best node of a cluster (the Rust `ClusterClient`).

    `async with ClusterClient(["10.0.0.1:1992", "10.0.0.2:1992"]) as cluster:` then
    `async with cluster.connection() as conn: await operations.list_topics(conn)`.

    Args:
        seeds: Known node addresses (`host:port`, `[v6]:port`, a bare host, or a list).
        pool_config: The pool's configuration (TLS, token, limits).
        refresh_interval_s: How often the ranking is refreshed.
    """

    def __init__(
        self,
        seeds: Addresses,
        pool_config: PoolConfig | None = None,
        *,
        refresh_interval_s: float = 60.0,
    ) -> None:
        self.pool = ConnectionPool(pool_config)
        self.discovery = ClusterDiscovery(seeds, self.pool, refresh_interval_s=refresh_interval_s)

    async def start(self) -> Self:
        """Start the pool and the discovery (one refresh before returning)."""
        await self.pool.start()
        try:
            await self.discovery.start()
        except BaseException:
            await self.pool.close()
            raise
        return self

    async def close(self) -> None:
        """Stop discovery and close the pool."""
        await self.discovery.close()
        await self.pool.close()

    @property
    def addresses(self) -> tuple[Address, ...]:
        """The current ranking, best first."""
        return self.discovery.addresses

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """Lend a connection to the first address of the ranking that gives one.

        Raises:
            ConnectionError: No address gave a connection (the last error is chained).
        """
        async with await self._first_lent() as conn:
            yield conn

    async def _first_lent(self) -> PooledConnection:
        last: LanceError | None = None
        for address in self.discovery.addresses:
            try:
                return await self.pool.acquire(address)
            except LanceError as error:
                last = error
        raise ConnectionError(f"no cluster node accepted a connection: {last}") from last
