"""Consumer groups against the embedded server: membership, rebalancing, commits, at-least-once.

Timings are short (session timeout 1 s, heartbeats every 0.1 s) so the whole file runs in a few
seconds; every wait is a `wait_for` on an observable condition, never a guessed sleep.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from lnc_client.errors import ConnectionError, InvalidRequestError
from lnc_client.groups import (
    AssignmentStrategy,
    GroupConfig,
    GroupCoordinator,
    GroupedConsumer,
    WorkerConfig,
)
from lnc_client.offsets import FileOffsetStore
from lnc_client.pool import ConnectionPool, PoolConfig

from ..helpers import wait_for
from .conftest import Child, Consumed, GroupEnv, python_worker

SESSION = 1.0
BEAT = 0.1


def group(topics: list[int], **changes: object) -> GroupConfig:
    options: dict[str, object] = {
        "topics": tuple(topics),
        "session_timeout_s": SESSION,
        "coordinator_addr": "127.0.0.1:0",
    }
    options.update(changes)
    return GroupConfig("g", **options)  # type: ignore[arg-type]


def worker_config(worker_id: str, **changes: object) -> WorkerConfig:
    options: dict[str, object] = {
        "group_id": "g",
        "heartbeat_interval_s": BEAT,
        "auto_commit_interval_s": 0.0,
    }
    options.update(changes)
    return WorkerConfig(worker_id, **options)  # type: ignore[arg-type]


async def join(env: GroupEnv, coordinator: GroupCoordinator, name: str) -> GroupedConsumer:
    return await GroupedConsumer.join(env.address, coordinator.join_address, worker_config(name))


async def test_join_assigns_and_a_second_worker_takes_its_share(group_env: GroupEnv) -> None:
    topics = group_env.topics[:4]
    async with GroupCoordinator(None, group(topics)) as coordinator:
        a = await join(group_env, coordinator, "a")
        assert (a.generation, a.assignments) == (1, tuple(topics))
        b = await join(group_env, coordinator, "b")
        assert (b.generation, b.assignments) == (2, (topics[1], topics[3]))
        await wait_for(lambda: a.generation == 2)
        assert a.assignments == (topics[0], topics[2])
        assert coordinator.get_assignments() == {"a": a.assignments, "b": b.assignments}
        await b.leave()
        await wait_for(lambda: a.assignments == tuple(topics))
        assert (coordinator.generation, coordinator.worker_count) == (3, 1)
        await a.leave()
        assert coordinator.worker_count == 0
        with pytest.raises(ConnectionError):
            await a.next_batch(topics[0])


async def test_coordinator_discovers_the_servers_topics(group_env: GroupEnv) -> None:
    config = group([], assignment_strategy=AssignmentStrategy.RANGE, discover_interval_s=0.05)
    async with GroupCoordinator(group_env.address, config) as coordinator:
        assert coordinator.topics == tuple(group_env.topics)
        worker = await GroupedConsumer.join(
            group_env.address, coordinator.join_address, worker_config("only")
        )
        assert worker.assignments == tuple(group_env.topics)
        await group_env.add_topics(1)
        await wait_for(lambda: worker.assignments == tuple(group_env.topics))
        assert (coordinator.generation, len(coordinator.topics)) == (2, 5)
        await worker.leave()


async def test_workers_share_the_records_each_processed_once(group_env: GroupEnv) -> None:
    topics = group_env.topics[:4]
    async with GroupCoordinator(None, group(topics)) as coordinator:
        workers = [await join(group_env, coordinator, n) for n in ("a", "b")]
        await wait_for(lambda: all(w.generation == 2 for w in workers))
        expected = {(t, f"{t}-{i}") for t in topics for i in range(20)}
        for t in topics:
            await group_env.produce(t, [f"{t}-{i}" for i in range(10)])
        seen: list[tuple[str, int, str]] = []
        runs = [Consumed(w, seen) for w in workers]
        for t in topics:
            await group_env.produce(t, [f"{t}-{i}" for i in range(10, 20)])
        await wait_for(lambda: len(seen) >= len(expected))
        for run in runs:
            await run.stop()
    assert Counter((t, v) for _, t, v in seen) == Counter(expected)
    owners = {t: w for w, t, _ in seen}
    assert {t for t, w in owners.items() if w == "a"} == {topics[0], topics[2]}


async def test_next_batch_and_commit_per_topic(group_env: GroupEnv, tmp_path: Path) -> None:
    topics = group_env.topics[:2]
    store = FileOffsetStore(tmp_path / "offsets")
    await group_env.produce(topics[0], ["x", "y"])
    await group_env.produce(topics[1], ["z"])
    async with GroupCoordinator(None, group(topics)) as coordinator:
        address = coordinator.join_address
        config = worker_config("a", server_side_offsets=False)
        async with GroupedConsumer(group_env.address, address, config, offset_store=store) as a:
            first = await a.next_batch(topics[0], timeout=2)
            assert first is not None
            assert [r.value for r in first.records] == [b"x", b"y"]
            assert await a.commit(topics[0]) == first.end_offset
            second = await a.poll(topics[1], timeout=2)
            assert second is not None
            with pytest.raises(InvalidRequestError, match="not assigned"):
                await a.next_batch(999)
        # topic 2's batch was never committed: a new worker of the group gets it again
        async with GroupedConsumer(group_env.address, address, config, offset_store=store) as b:
            again = await b.next_batch(topics[1], timeout=2)
            assert again is not None
            assert [r.value for r in again.records] == [b"z"]
            assert await b.next_batch(topics[0], timeout=0.3) is None
    assert await store.load("g", topics[0], topic_name="g1") == first.end_offset


async def test_batches_ends_at_the_limit_and_on_close(group_env: GroupEnv) -> None:
    topic = group_env.topics[0]
    async with GroupCoordinator(None, group([topic])) as coordinator:
        worker = await GroupedConsumer.join(
            group_env.address, coordinator.join_address, worker_config("a")
        )
        got = []
        for i in range(2):
            await group_env.produce(topic, [f"r{i}", "x"])
            got += [[r.value for r in b.result.records] async for b in worker.batches(limit=1)]
        assert got == [[b"r0", b"x"], [b"r1", b"x"]]
        ended = asyncio.Event()

        async def drain() -> None:
            async for _ in worker.batches(timeout=0.01):
                pass
            ended.set()

        task = asyncio.get_running_loop().create_task(drain())
        await asyncio.sleep(0.1)
        await worker.close()
        await asyncio.wait_for(ended.wait(), 2)
        await task


async def test_a_dropped_worker_joins_again(group_env: GroupEnv) -> None:
    topics = group_env.topics[:2]
    config = group(topics, session_timeout_s=0.3)
    async with GroupCoordinator(None, config) as coordinator:
        slow = worker_config("a", heartbeat_interval_s=5.0)
        worker = await GroupedConsumer.join(group_env.address, coordinator.join_address, slow)
        await wait_for(lambda: coordinator.worker_count == 0)
        assert await worker.heartbeat() == coordinator.generation
        assert worker.assignments == tuple(topics)
        assert coordinator.worker_count == 1
        await worker.leave()


async def test_killed_worker_mid_batch_loses_nothing(group_env: GroupEnv) -> None:
    """A worker process is SIGKILLed in the middle of a batch; its topic moves and nothing is
    skipped: the survivor resumes from the dead worker's last commit, the unfinished batch
    included."""
    topics = group_env.topics[:2]
    async with GroupCoordinator(None, group(topics)) as coordinator:
        dead = await python_worker(
            "--server", group_env.address, "--coordinator", coordinator.join_address,
            "--worker-id", "a", "--group", "g", "--heartbeat", str(BEAT),
            "--commit-interval", "0", "--stall-on", "stall",
        ).start()  # fmt: skip
        try:
            await wait_for(lambda: coordinator.worker_count == 1, 10)
            survivor = await GroupedConsumer.join(
                group_env.address, coordinator.join_address, worker_config("b")
            )
            seen: list[tuple[str, int, str]] = []
            run = Consumed(survivor, seen)
            await wait_for(lambda: coordinator.get_assignments().get("a") == (topics[0],))
            await group_env.produce(topics[0], [f"r{i}" for i in range(5)])
            await wait_for(lambda: len(dead.records(topics[0])) == 5)
            await group_env.produce(topics[0], ["r5", "r6", "stall", "r7"])
            await wait_for(lambda: dead.has("STALL"))
            await dead.kill()
            killed_at = asyncio.get_running_loop().time()
            await wait_for(lambda: survivor.assignments == tuple(topics), SESSION + 2)
            moved_after = asyncio.get_running_loop().time() - killed_at
            await wait_for(lambda: len(seen) >= 4)
            await run.stop()
        finally:
            await dead.kill()
    assert moved_after <= SESSION + 1.0 + 2 * BEAT
    assert dead.records(topics[0]) == [f"r{i}" for i in range(5)]
    assert [v for _, t, v in seen if t == topics[0]] == ["r5", "r6", "stall", "r7"]


async def test_rebalances_reuse_pooled_connections(group_env: GroupEnv) -> None:
    topics = group_env.topics[:2]
    async with ConnectionPool(PoolConfig(health_check_interval_s=0)) as pool:
        async with GroupCoordinator(None, group(topics)) as coordinator:
            address = coordinator.join_address
            a = await GroupedConsumer.join(
                group_env.address, address, worker_config("a"), pool=pool
            )
            b = await GroupedConsumer.join(
                group_env.address, address, worker_config("b"), pool=pool
            )
            await wait_for(lambda: a.generation == 2)
            assert await a.next_batch(topics[0], timeout=0) is None
            assert pool.stats.connections_created == 3
            await b.leave()
            await wait_for(lambda: a.assignments == tuple(topics))
            assert await a.next_batch(topics[1], timeout=0) is None
            stats = pool.stats
            assert (stats.connections_created, stats.acquire_attempts) == (3, 4)
            await a.leave()
        assert pool.stats.active_connections == 0


async def test_the_coordinator_command(group_env: GroupEnv) -> None:
    topics = ",".join(map(str, group_env.topics[:2]))
    child = await Child(
        sys.executable, "-m", "lnc_client.groups", "coordinator", "--server", group_env.address,
        "--listen", "127.0.0.1:0", "--topics", topics, "--session-timeout", "5",
    ).start()  # fmt: skip
    try:
        await wait_for(lambda: child.has("JOIN"), 10)
        address = child.last("JOIN")[1]
        worker = await GroupedConsumer.join(group_env.address, address, worker_config("w"))
        assert worker.assignments == tuple(group_env.topics[:2])
        await wait_for(lambda: child.has("GENERATION") and child.last("GENERATION")[1] == "1")
        assert json.loads(child.last("GENERATION")[2]) == {"w": group_env.topics[:2]}
        await worker.leave()
    finally:
        await child.kill()
