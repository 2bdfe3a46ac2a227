"""One overall deadline per public call (issue 9.8), against a server that accepts and never
answers."""

from __future__ import annotations

import asyncio

import pytest

from lnc_client import LanceClient
from lnc_client.config import ClientConfig
from lnc_client.errors import TimeoutError

from .test_reconnect import stub


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # reads, never answers, until the client goes


@pytest.mark.parametrize(("timeout", "limit"), [(None, 1.0), (0.3, 0.3)])
async def test_create_topic_has_one_deadline_retries_included(
    timeout: float | None, limit: float
) -> None:
    async with stub(silent) as address:
        host, _, port = address.rpartition(":")
        config = ClientConfig(host=host, port=int(port), request_timeout_s=1.0)
        async with LanceClient(config) as client:
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(TimeoutError):
                await client.create_topic("t", timeout=timeout)
            assert loop.time() - start < limit + 0.5  # was 441 s with request_timeout_s=1
