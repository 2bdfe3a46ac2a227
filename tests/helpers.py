"""Helpers shared by tests in several folders: waiting for a condition, polling a consumer
until a number of records came, running a Python snippet in a fresh interpreter.

Imported as `from ..helpers import ...` (or `from .helpers import ...` at the top level); the
folder conftests re-export what their tests used to import from them.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Mapping

from lnc_client.consumer import StandaloneConsumer


async def wait_for(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Return as soon as `condition()` is true; raise TimeoutError after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def poll_values(
    consumer: StandaloneConsumer,
    count: int,
    *,
    timeout: float = 5.0,
    poll_timeout: float | None = None,
) -> list[bytes]:
    """Poll until at least `count` record values came; raise TimeoutError after `timeout`."""
    values: list[bytes] = []
    async with asyncio.timeout(timeout):
        while len(values) < count:
            result = await consumer.poll(timeout=poll_timeout)
            if result is not None:
                values += [record.value for record in result.records]
    return values


def run_python(
    code: str, *, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `code` with this interpreter (`python -c`) and return its exit code and output."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=None if env is None else dict(env),
    )
