"""Python and Rust (`lnc-client` crate) group members and offset files, mixed.

Needs a Rust helper binary built against the `lnc-client` crate (see docs/groups.md, "Interop
with Rust"): set LNC_TEST_RUST_GROUP_BIN to its path, otherwise these tests are skipped. The
helper runs a Rust `GroupCoordinator`, a Rust `GroupedConsumer` worker or a Rust
`StandaloneConsumer` with a `LockFileOffsetStore`, and prints one event line per step.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lnc_client import StandaloneConfig, StandaloneConsumer
from lnc_client.groups import GroupConfig, GroupCoordinator, GroupedConsumer, WorkerConfig
from lnc_client.rust_offsets import RustOffsetStore, rust_consumer_id

from ..helpers import wait_for
from .conftest import Child, Consumed, GroupEnv

RUST_BIN = os.environ.get("LNC_TEST_RUST_GROUP_BIN", "")
pytestmark = pytest.mark.skipif(
    not (RUST_BIN and Path(RUST_BIN).is_file()),
    reason="set LNC_TEST_RUST_GROUP_BIN to the Rust group helper (docs/groups.md)",
)


def rust(*args: str) -> Child:
    return Child(RUST_BIN, *args)


async def rust_coordinator(env: GroupEnv, topics: list[int], session_ms: int) -> Child:
    child = await rust(
        "coordinator", env.address, "127.0.0.1:0", ",".join(map(str, topics)), str(session_ms),
        "round_robin",
    ).start()  # fmt: skip
    await wait_for(lambda: child.has("JOIN"), 10)
    return child


def worker(name: str) -> WorkerConfig:
    return WorkerConfig(name, group_id="g", heartbeat_interval_s=0.1, auto_commit_interval_s=0)


async def test_python_workers_join_a_rust_coordinator(group_env: GroupEnv) -> None:
    topics = group_env.topics[:4]
    coordinator = await rust_coordinator(group_env, topics, 5000)
    try:
        address = coordinator.last("JOIN")[1]
        a = await GroupedConsumer.join(group_env.address, address, worker("a"))
        assert (a.generation, a.assignments) == (1, tuple(topics))
        b = await GroupedConsumer.join(group_env.address, address, worker("b"))
        await wait_for(lambda: a.generation == 2)
        assert sorted(a.assignments + b.assignments) == topics
        assert len(a.assignments) == len(b.assignments) == 2
        seen: list[tuple[str, int, str]] = []
        runs = [Consumed(w, seen) for w in (a, b)]
        for t in topics:
            await group_env.produce(t, [f"{t}-x", f"{t}-y"])
        await wait_for(lambda: len(seen) >= 8)
        assert sorted(v for _, _, v in seen) == sorted(f"{t}-{s}" for t in topics for s in "xy")
        await runs[1].stop()
        await wait_for(lambda: sorted(a.assignments) == topics)
        await runs[0].stop()
    finally:
        await coordinator.kill()


async def test_rust_coordinator_leaves_an_expired_workers_topics_unassigned(
    group_env: GroupEnv,
) -> None:
    """Documents a defect of the Rust coordinator (docs/groups.md): on a session timeout it
    bumps the generation but does not reassign; the Python coordinator does."""
    topics = group_env.topics[:2]
    coordinator = await rust_coordinator(group_env, topics, 800)
    try:
        address = coordinator.last("JOIN")[1]
        silent = WorkerConfig("a", heartbeat_interval_s=60)
        a = await GroupedConsumer.join(group_env.address, address, silent)
        b = await GroupedConsumer.join(group_env.address, address, worker("b"))
        before = b.assignments
        assert len(before) == 1
        await wait_for(lambda: b.generation >= 3, 5)
        assert b.assignments == before
        await a.close()
        await b.close()
    finally:
        await coordinator.kill()


async def test_rust_worker_joins_a_python_coordinator_and_its_topics_move_when_killed(
    group_env: GroupEnv,
) -> None:
    topics = group_env.topics[:4]
    config = GroupConfig(
        "g", topics=tuple(topics), session_timeout_s=1.0, coordinator_addr="127.0.0.1:0"
    )
    async with GroupCoordinator(None, config) as coordinator:
        py = await GroupedConsumer.join(group_env.address, coordinator.join_address, worker("a"))
        seen: list[tuple[str, int, str]] = []
        run = Consumed(py, seen)
        rs = await rust(
            "worker", group_env.address, coordinator.join_address, "rust-1", "100"
        ).start()
        try:
            await wait_for(lambda: rs.has("JOINED"), 10)
            assert coordinator.worker_count == 2
            rust_topics = coordinator.get_assignments()["rust-1"]
            assert len(rust_topics) == 2
            for t in topics:
                await group_env.produce(t, [f"{t}-0", f"{t}-1"])
            await wait_for(lambda: all(len(rs.records(t)) == 2 for t in rust_topics), 10)
            assert all(rs.records(t) == [f"{t}-0", f"{t}-1"] for t in rust_topics)
            await rs.kill()
            await wait_for(lambda: py.assignments == tuple(topics), 3)
            await wait_for(lambda: {(t, v) for _, t, v in seen} >= {
                (t, f"{t}-{i}") for t in topics for i in range(2)
            })  # fmt: skip
        finally:
            await rs.kill()
            await run.stop()


async def test_rust_consumer_id_matches_the_rust_hasher() -> None:
    for name in ["", "a", "worker-1", "ünïcode-ü", "x" * 100]:
        child = await rust("hash", name).start()
        await wait_for(lambda c=child: bool(c.lines), 10)  # type: ignore[misc]
        await child.kill()
        assert int(child.lines[0][0]) == rust_consumer_id(name)


async def test_python_resumes_from_offsets_a_rust_consumer_stored(
    group_env: GroupEnv, tmp_path: Path
) -> None:
    topic = group_env.topics[0]
    await group_env.produce(topic, ["a", "b", "c"])
    offsets = tmp_path / "rust-offsets"
    child = await rust(
        "standalone", group_env.address, "svc", str(topic), str(offsets), "3"
    ).start()
    await wait_for(lambda: child.has("COMMITTED"), 10)
    await child.kill()
    committed = int(child.last("COMMITTED")[1])
    store = RustOffsetStore(offsets)
    assert store.path_for("svc", topic).is_file()
    assert await store.load("svc", topic) == committed
    await group_env.produce(topic, ["d"])
    config = StandaloneConfig("svc", topic_id=topic)
    async with StandaloneConsumer(group_env.address, config, store) as consumer:
        assert consumer.current_offset == committed
        batch = await consumer.poll(2)
        assert batch is not None
        assert [r.value for r in batch.records] == [b"d"]
        await consumer.commit()
    # and the Rust consumer resumes from what Python committed
    await group_env.produce(topic, ["e"])
    child = await rust(
        "standalone", group_env.address, "svc", str(topic), str(offsets), "1"
    ).start()
    await wait_for(lambda: child.has("COMMITTED"), 10)
    await child.kill()
    assert [line[1] for line in child.lines if line[0] == "REC"] == ["e"]
