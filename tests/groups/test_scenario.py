"""The issue's "done when" scenario (slow): 3 Python workers and 1 Rust worker share a group over
10 topics while records keep coming; one of them is SIGKILLed; its topics move to the others
within the session timeout and every record is processed at least once.

Run: LNC_TEST_RUST_GROUP_BIN=/path/to/helper .venv/bin/pytest -m slow tests/groups/test_scenario.py
Without the Rust helper the Rust worker is replaced by a fourth Python worker.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from lnc_client.groups import GroupConfig, GroupCoordinator

from ..helpers import wait_for
from .conftest import Child, GroupEnv, python_worker

RUST_BIN = os.environ.get("LNC_TEST_RUST_GROUP_BIN", "")
HAVE_RUST = bool(RUST_BIN and Path(RUST_BIN).is_file())
SESSION = 2.0
BEAT_MS = 200


def start_worker(env: GroupEnv, coordinator: str, name: str) -> Child:
    if name.startswith("rust") and HAVE_RUST:
        return Child(RUST_BIN, "worker", env.address, coordinator, name, str(BEAT_MS))
    return python_worker(
        "--server", env.address, "--coordinator", coordinator, "--worker-id", name,
        "--group", "g", "--heartbeat", str(BEAT_MS / 1000), "--commit-interval", "0.2",
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["py-1", "rust-1"])
async def test_kill_one_of_four_workers_over_ten_topics(group_env: GroupEnv, victim: str) -> None:
    await group_env.add_topics(6)
    topics = group_env.topics
    assert len(topics) == 10
    config = GroupConfig(
        "g", topics=tuple(topics), session_timeout_s=SESSION, coordinator_addr="127.0.0.1:0"
    )
    async with GroupCoordinator(None, config) as coordinator:
        names = ["py-0", "py-1", "py-2", "rust-1"]
        workers = {
            n: await start_worker(group_env, coordinator.join_address, n).start() for n in names
        }
        produced: set[tuple[int, str]] = set()
        stop = asyncio.Event()

        async def produce() -> None:
            i = 0
            while not stop.is_set():
                for t in topics:
                    values = [f"{t}-{i}-{k}" for k in range(3)]
                    await group_env.produce(t, values)
                    produced.update((t, v) for v in values)
                i += 1
                await asyncio.sleep(0.02)

        try:
            await wait_for(lambda: coordinator.worker_count == 4, 15)
            producer = asyncio.get_running_loop().create_task(produce())
            await asyncio.sleep(1.0)
            victim_topics = coordinator.get_assignments()[victim]
            assert len(victim_topics) >= 2
            await workers[victim].kill()
            killed_at = asyncio.get_running_loop().time()
            await wait_for(lambda: victim not in coordinator.get_assignments(), SESSION + 3)
            moved_after = asyncio.get_running_loop().time() - killed_at
            after = coordinator.get_assignments()
            assert sorted(t for ts in after.values() for t in ts) == sorted(topics)
            await asyncio.sleep(1.0)
            stop.set()
            await producer

            def processed() -> set[tuple[int, str]]:
                return {
                    (int(line[1]), line[2])
                    for child in workers.values()
                    for line in list(child.lines)
                    if line[0] == "REC" and len(line) == 3
                }

            await wait_for(lambda: processed() >= produced, 30)
        finally:
            stop.set()
            for child in workers.values():
                await child.kill()
    assert moved_after <= SESSION + 1.0
    assert processed() >= produced
