"""Fixtures for group tests: an embedded server with topics, a producer helper, workers.

`GroupEnv` holds a server (the embedded one, or the real Lance server when LNC_TEST_LANCE_BIN
is set: `start_server` of tests/client) on an ephemeral 127.0.0.1 port and the ids of its topics
`g1`..`g4` (more with `add_topics`); `produce(topic, values)` sends one batch. `Consumed` runs a
worker's `batches()` loop in a task and records `(worker, topic, value)` for every processed
record. `Child` runs a process (`python_worker`: `python -m lnc_client.groups worker`; or a Rust
helper) that can be SIGKILLed, and collects its event lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lnc_client import LanceClient, Producer
from lnc_client.groups import GroupedConsumer

from ..client.conftest import ServerUnderTest, start_server


@dataclass
class GroupEnv:
    server: ServerUnderTest
    topics: list[int]
    producer: Producer

    @property
    def address(self) -> str:
        return self.server.address

    async def produce(self, topic: int, values: list[str]) -> None:
        await self.producer.send_batch(topic, [v.encode() for v in values])

    async def add_topics(self, count: int) -> None:
        """Create topics `g<n+1>`..`g<n+count>` (n: the topics so far)."""
        async with LanceClient(self.address) as client:
            for i in range(len(self.topics) + 1, len(self.topics) + count + 1):
                self.topics.append((await client.create_topic(f"g{i}")).id)


@pytest.fixture
async def group_env(tmp_path: Path) -> AsyncIterator[GroupEnv]:
    """A server with four topics g1..g4 (`add_topics` for more)."""
    async with start_server(tmp_path / "data") as server, Producer(server.address) as producer:
        env = GroupEnv(server, [], producer)
        await env.add_topics(4)
        yield env


@dataclass
class Consumed:
    """Runs `worker.batches()` in a task, recording every processed record."""

    worker: GroupedConsumer
    seen: list[tuple[str, int, str]]
    task: asyncio.Task[None] = field(init=False)

    def __post_init__(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for batch in self.worker.batches(timeout=0.01):
            for record in batch.result.records:
                value = record.value.decode()
                self.seen.append((self.worker.worker_id, batch.topic_id, value))

    async def stop(self) -> None:
        await self.worker.close()
        await asyncio.wait_for(self.task, 5)


def python_worker(*args: str) -> Child:
    """`python -m lnc_client.groups worker ARGS` (not started)."""
    return Child(sys.executable, "-m", "lnc_client.groups", "worker", *args)


class Child:
    """A child process whose stdout event lines (`KIND rest...`) are collected as they come."""

    def __init__(self, *argv: str) -> None:
        self.argv = argv
        self.lines: list[list[str]] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> Child:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.PIPE, env=env
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(line.decode().rstrip("\n").split(" ", 2))

    def records(self, topic: int) -> list[str]:
        return [line[2] for line in self.lines if line[0] == "REC" and int(line[1]) == topic]

    def has(self, kind: str) -> bool:
        return any(line[0] == kind for line in self.lines)

    def last(self, kind: str) -> list[str]:
        return next(line for line in reversed(self.lines) if line[0] == kind)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._reader, 5)
