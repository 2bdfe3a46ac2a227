"""StandaloneConsumer under faults: slow answers, cut connections, server restarts, tiny windows.

In every test each acknowledged record is consumed exactly once and in order, and every
`poll()` returns within its timeout (plus a small scheduling margin).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import Awaitable, Callable

import pytest

from lnc_client import operations
from lnc_client.config import ReconnectConfig
from lnc_client.consumer import PollResult, StandaloneConsumer
from lnc_client.errors import ConnectionError, TimeoutError, error_from_server_text
from lnc_client.protocol.control import FetchResult
from lnc_client.protocol.records import encode_values
from lnc_client.server import FaultConfig, LanceServer

from .conftest import TcpProxy
from .test_consumer import TIMEOUT, assert_contiguous, ingest, ingest_values, make_config, values_of

MARGIN = 0.15
"""Scheduling slack allowed on top of a poll's timeout (2 busy cores)."""

VALUES = [b"record-%04d" % n for n in range(200)]

PRODUCER_FINISH_BOUND = 30.0
"""Bound on a producer finishing its batch in progress: above any single `ingest()` attempt
(connect timeout, then TIMEOUT for the ack), so a slow attempt fails with its own error."""


class TimedPolls:
    """Polls a consumer until `count` records came, checking each poll's duration."""

    def __init__(self, consumer: StandaloneConsumer, timeout: float) -> None:
        self.consumer = consumer
        self.timeout = timeout
        self.results: list[PollResult] = []
        self.empty_polls = 0
        self.longest = 0.0

    @property
    def received(self) -> int:
        return sum(result.record_count for result in self.results)

    async def until(self, count: int, *, limit: float = TIMEOUT) -> list[PollResult]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(limit):
            while self.received < count:
                started = loop.time()
                result = await self.consumer.poll(self.timeout)
                elapsed = loop.time() - started
                self.longest = max(self.longest, elapsed)
                assert elapsed <= self.timeout + MARGIN
                if result is None:
                    self.empty_polls += 1
                else:
                    self.results.append(result)
        return self.results


async def test_slow_answers_never_duplicate_or_reorder(
    events_server: LanceServer, proxy: Callable[[str], Awaitable[TcpProxy]]
) -> None:
    await ingest_values(events_server.address, VALUES[:100])
    slow = await proxy(events_server.address)
    slow.delay_s = 0.15
    config = make_config(max_fetch_bytes=400, request_timeout_s=2.0)
    async with StandaloneConsumer(slow.address, config) as consumer:
        polls = TimedPolls(consumer, timeout=0.04)
        results = await polls.until(100)
        assert values_of(results) == VALUES[:100]
        assert_contiguous(results)
        assert polls.empty_polls >= 5
        slow.delay_s = 0.0
        assert await consumer.poll(timeout=0.3) is None
        assert consumer.current_offset == 16 * 100
        assert consumer.reconnects == 0


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_windows_of_seven_bytes_through_a_slow_link(
    events_server: LanceServer, proxy: Callable[[str], Awaitable[TcpProxy]]
) -> None:
    values = [b"x" * (n % 17) for n in range(40)]
    await ingest_values(events_server.address, values, per_batch=3)
    events_server.faults = FaultConfig(max_fetch_bytes=7)
    slow = await proxy(events_server.address)
    slow.delay_s = 0.002
    async with StandaloneConsumer(slow.address, make_config()) as consumer:
        results = await TimedPolls(consumer, timeout=0.02).until(40)
    assert values_of(results) == values
    assert_contiguous(results)


async def test_connections_cut_again_and_again(
    events_server: LanceServer, proxy: Callable[[str], Awaitable[TcpProxy]]
) -> None:
    await ingest_values(events_server.address, VALUES)
    link = await proxy(events_server.address)
    link.delay_s = 0.005

    async def cutter() -> None:
        while True:
            await asyncio.sleep(0.03)
            link.cut()

    config = make_config(max_fetch_bytes=100)
    async with StandaloneConsumer(link.address, config) as consumer:
        cutting = asyncio.create_task(cutter())
        try:
            results = await TimedPolls(consumer, timeout=0.05).until(200)
        finally:
            cutting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cutting
        assert values_of(results) == VALUES
        assert_contiguous(results)
        assert consumer.reconnects >= 2
        # one connection per (re)connect, plus the TLS probes after cuts that came before any
        # byte (tls_probe: at most 3 until a connection stays up)
        assert link.connections - link.tls_probes == consumer.reconnects + 1
        assert link.tls_probes <= 3


@pytest.mark.ours_only("uses lnc serve's fault switches")
async def test_the_server_dropping_connections_after_n_frames(events_server: LanceServer) -> None:
    await ingest_values(events_server.address, VALUES)
    events_server.faults = FaultConfig(drop_after_frames=4)
    async with StandaloneConsumer(
        events_server.address, make_config(max_fetch_bytes=150)
    ) as consumer:
        results = await TimedPolls(consumer, timeout=0.1).until(200)
        assert values_of(results) == VALUES
        assert_contiguous(results)
        assert consumer.reconnects >= 5


async def test_server_restart_under_load(events_server: LanceServer) -> None:
    """A producer writes batch after batch while the server stops and starts again.

    A batch whose connection is lost (refused, reset, or closed by the stopping server) is sent
    again until it is acked; the server never leaves a connection open without an answer, so
    every batch ends acked and every acked record is consumed exactly once, in order.
    """
    acked: list[int] = []
    stop = asyncio.Event()

    def batch_values(number: int) -> list[bytes]:
        return [b"b%04d-%02d" % (number, i) for i in range(5)]

    async def produce() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            payload = encode_values(batch_values(number))
            while True:
                try:
                    await ingest(events_server.address, [payload])
                except builtins.ConnectionError:  # lost before the ack: send it again
                    await asyncio.sleep(0.01)
                else:
                    acked.append(number)
                    break

    config = make_config(max_fetch_bytes=200)
    async with StandaloneConsumer(events_server.address, config) as consumer:
        polls = TimedPolls(consumer, timeout=0.05)
        producing = asyncio.create_task(produce())
        try:
            await polls.until(40)
            await events_server.restart()
            await polls.until(polls.received + 40)
        finally:
            stop.set()
            # The batch in progress ends by itself: acked, or failed by one of its own bounds
            # (connect, then TIMEOUT for the ack), which then fails the test with its error.
            await asyncio.wait_for(producing, PRODUCER_FINISH_BOUND)
        await polls.until(len(acked) * 5)
        assert await consumer.poll(timeout=0.2) is None
        assert consumer.reconnects >= 1
    assert acked == list(range(1, len(acked) + 1))
    assert values_of(polls.results) == [v for number in acked for v in batch_values(number)]
    assert_contiguous(polls.results)


async def test_a_stopped_server_makes_polls_return_none_in_time_then_resume(
    events_server: LanceServer,
) -> None:
    await ingest_values(events_server.address, VALUES[:100])
    async with StandaloneConsumer(
        events_server.address, make_config(max_fetch_bytes=150)
    ) as consumer:
        polls = TimedPolls(consumer, timeout=0.05)
        await polls.until(30)
        await events_server.stop()
        for _ in range(5):
            started = asyncio.get_running_loop().time()
            polls.results.extend(r for r in [await consumer.poll(0.05)] if r is not None)
            assert asyncio.get_running_loop().time() - started <= 0.05 + MARGIN
        await events_server.start()
        await ingest_values(events_server.address, VALUES[100:])
        results = await polls.until(200)
        assert values_of(results) == VALUES
        assert_contiguous(results)


async def poll_until_error(consumer: StandaloneConsumer, into: list[PollResult]) -> None:
    """Poll (collecting results) until a poll raises; fails after TIMEOUT."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            result = await consumer.poll(0.05)
            if result is not None:
                into.append(result)


async def test_without_auto_reconnect_a_cut_is_raised(
    events_server: LanceServer, proxy: Callable[[str], Awaitable[TcpProxy]]
) -> None:
    await ingest_values(events_server.address, VALUES)
    link = await proxy(events_server.address)
    config = make_config(max_fetch_bytes=150, auto_reconnect=False)
    async with StandaloneConsumer(link.address, config) as consumer:
        first = await consumer.poll()
        assert first is not None
        link.cut()
        results = [first]
        with pytest.raises(ConnectionError):
            await poll_until_error(consumer, results)
        assert values_of(results) == VALUES[: len(values_of(results))]
        assert_contiguous(results)
        assert consumer.current_offset == results[-1].end_offset


async def test_reconnect_gives_up_after_max_attempts(events_server: LanceServer) -> None:
    await ingest_values(events_server.address, VALUES[:10])
    reconnect = ReconnectConfig(base_delay_ms=5, max_delay_ms=10, max_attempts=2)
    async with StandaloneConsumer(
        events_server.address, make_config(reconnect=reconnect)
    ) as consumer:
        await TimedPolls(consumer, timeout=0.1).until(10)
        await events_server.stop()
        with pytest.raises(ConnectionError, match="gave up after 2 rounds"):
            await poll_until_error(consumer, [])
        assert consumer.current_offset == 160


async def test_start_is_bounded_by_the_connect_timeout(
    events_server: LanceServer, proxy: Callable[[str], Awaitable[TcpProxy]]
) -> None:
    slow = await proxy(events_server.address)
    slow.delay_s = 0.5
    consumer = StandaloneConsumer(slow.address, make_config(connect_timeout_s=0.2))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError, match=r"starting the consumer took longer than 0\.2 s"):
        await consumer.start()
    assert loop.time() - started <= 0.2 + MARGIN
    assert consumer.closed


async def test_connecting_to_nothing_fails_within_the_connect_timeout(
    events_server: LanceServer,
) -> None:
    address = events_server.address
    await events_server.stop()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError, match=r"took longer than 0\.2 s"):
        await StandaloneConsumer.connect(address, make_config(connect_timeout_s=0.2))
    assert loop.time() - started <= 0.2 + MARGIN
    with pytest.raises(ConnectionError, match="cannot connect"):
        await StandaloneConsumer.connect(address, make_config(auto_reconnect=False))


async def test_a_fetch_that_meets_a_rotating_segment_is_retried(
    events_server: LanceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real lance answers a Fetch racing a segment rotation (the active file is renamed when it
    closes) or a retention delete with `I/O error: No such file or directory (os error 2)`:
    seen 17 times in 117,000 fetches against 64 KiB segments. The consumer retries it."""
    await ingest_values(events_server.address, VALUES)
    real_fetch = operations.fetch
    calls = 0

    async def rotating(*args: object, **kwargs: object) -> FetchResult:
        nonlocal calls
        calls += 1
        if calls in (2, 3):
            raise error_from_server_text("I/O error: No such file or directory (os error 2)")
        return await real_fetch(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(operations, "fetch", rotating)
    config = make_config(max_fetch_bytes=400, prefetch=False)
    async with StandaloneConsumer(events_server.address, config) as consumer:
        results = await TimedPolls(consumer, timeout=1.0).until(200)
    assert values_of(results) == VALUES
    assert_contiguous(results)
    assert calls > 3
