"""Cluster discovery: ranking from cluster statuses, refresh against embedded servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from lnc_client import operations
from lnc_client.config import Address, ConnectionOptions
from lnc_client.discovery import ClusterClient, ClusterDiscovery, rank_seeds
from lnc_client.errors import ConnectionError
from lnc_client.pool import ConnectionPool, PoolConfig
from lnc_client.protocol.control import ClusterStatus

from .conftest import start_server

A, B, C, D = (Address("10.0.0.1", p) for p in (1, 2, 3, 4))


def status(node_id: int, *, leader: bool = False, **peers: str) -> ClusterStatus:
    return ClusterStatus(
        node_id=node_id,
        is_leader=leader,
        leader_id=1 if leader else None,
        current_term=3,
        node_count=4,
        healthy_nodes=3,
        quorum_available=True,
        peer_states=dict(peers),
    )


def test_leader_first_then_healthy_then_down_then_silent() -> None:
    statuses = {
        A: status(2),
        B: status(3),
        C: status(1, leader=True, **{"2": "Failed", "3": "Connected"}),
        D: None,
    }
    assert rank_seeds([A, B, C, D], statuses) == (C, B, A, D)


def test_state_words_are_not_addresses_but_addresses_are_used() -> None:
    statuses = {A: status(1, leader=True, **{"2": "Connected", "3": "10.0.0.9:1992"})}
    assert rank_seeds([A, B], statuses) == (A, Address("10.0.0.9", 1992), B)


def test_nothing_answered_keeps_the_seed_order() -> None:
    assert rank_seeds([B, A], {}) == (B, A)


def options() -> PoolConfig:
    return PoolConfig(
        health_check_interval_s=0,
        connection=ConnectionOptions(connect_timeout_s=1, request_timeout_s=1),
    )


async def test_refresh_ranks_a_dead_seed_last(tmp_path: Path) -> None:
    async with (
        start_server(tmp_path / "one") as one,
        start_server(tmp_path / "two") as two,
    ):
        dead = start_server(tmp_path / "dead")
        await dead.start()
        dead_address = dead.address
        await dead.stop()
        seeds = [dead_address, one.address, two.address]
        async with ConnectionPool(options()) as pool:
            discovery = ClusterDiscovery(seeds, pool, refresh_interval_s=0)
            async with discovery:
                ranked = [str(a) for a in discovery.addresses]
                assert ranked[-1] == dead_address
                assert set(ranked[:2]) == {one.address, two.address}
                assert str(discovery.leader) == ranked[0]
                assert [n.answered for n in discovery.nodes] == [False, True, True]
            await one.stop()
            ranked = [str(a) for a in await discovery.refresh()]
            assert ranked == [two.address, dead_address, one.address]


async def test_cluster_client_uses_the_first_node_that_answers(tmp_path: Path) -> None:
    async with start_server(tmp_path / "one") as live:
        dead = start_server(tmp_path / "dead")
        await dead.start()
        dead_address = dead.address
        await dead.stop()
        async with ClusterClient([dead_address, live.address], options()) as cluster:
            assert str(cluster.addresses[0]) == live.address
            async with cluster.connection() as conn:
                assert (await operations.cluster_status(conn)).is_standalone
        async with ClusterClient([dead_address], options()) as cluster:
            with pytest.raises(ConnectionError, match="no cluster node"):
                async with cluster.connection():
                    pass
