"""Chaos and soak runs: numbered records through SIGKILLs, cut connections and time.

`lnc serve` runs as a subprocess behind a `FaultProxy`. Producers (lnc_client `Producer`, one
topic) send records numbered `(producer, seq)` through the proxy and note every Ack. A chaos
task SIGKILLs the server and restarts it on the same port and data directory `kills` times, and
cuts every proxied connection `cuts` times, at random moments. At the end the producers flush,
the whole topic is read back straight from the server, and the run is judged:

* acked: records whose Ack arrived; lost: acked records missing from the topic (must be 0);
* duplicates: extra copies (at-least-once resends after a lost connection: allowed, counted);
* order violations: a producer's records whose first copy comes after a higher number of the
  same producer (must be 0).

In soak mode (no kills, no cuts) the server's resident memory and the Ack latency of sampled
records are recorded per interval, to show both stay flat.

Commands (from the repository root):

    python -m tests.chaos.harness --seconds 60 --kills 5 --cuts 10 --producers 4
    python -m tests.chaos.harness --soak --seconds 600 --producers 2

The default suite runs a short chaos run (tests/chaos/test_chaos.py); `-m slow` a longer one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lnc_client import operations
from lnc_client.config import ConnectionOptions, ProducerConfig, ReconnectConfig
from lnc_client.connection import Connection
from lnc_client.errors import BackpressureError, LanceError
from lnc_client.producer import Producer, SendAck, SendCallback
from lnc_client.protocol.records import decode_stream
from lnc_client.testing import FaultProxy

_RECORD = struct.Struct("<IQ")
_PAD = bytes(52)  # 64-byte values
_START_TIMEOUT = 20.0
_FLUSH_TIMEOUT = 60.0


@dataclass
class Report:
    """What a run did and found (every count is of records)."""

    seconds: float = 0.0
    producers: int = 0
    kills: int = 0
    cuts: int = 0
    reconnects: int = 0
    sent: int = 0
    acked: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    stored: int = 0
    lost: int = 0
    duplicates: int = 0
    order_violations: int = 0
    rss_kib: list[int] = field(default_factory=list)
    latency_ms_p50: list[float] = field(default_factory=list)
    latency_ms_p99: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing acknowledged was lost and no producer's order was broken."""
        return self.lost == 0 and self.order_violations == 0 and self.acked > 0


class _Server:
    """`lnc serve` as a subprocess on a fixed data directory; restarts on the same port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        command = [sys.executable, "-m", "lnc_client.server", "--data-dir", str(self.data_dir)]
        command += ["--port", str(self.port), "--segment-max-bytes", str(4 * 1024 * 1024)]
        process = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the wait is below
            command, stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        self.process = process
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), _START_TIMEOUT)
        if not line.startswith(b"listening on "):
            raise RuntimeError(f"lnc serve did not start: {line!r}")
        self.port = int(line.rsplit(b":", 1)[1])

    def kill(self) -> None:
        """SIGKILL (no shutdown at all) and reap."""
        process = self.process
        if process is None:
            return
        self.process = None
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()

    def rss_kib(self) -> int:
        if self.process is None:
            return 0
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


class _Producer:
    """One producer task: numbered records as fast as the window allows, until told to stop."""

    def __init__(self, number: int, producer: Producer, topic: int, rate: float) -> None:
        self.number = number
        self.rate = rate
        self.producer = producer
        self.topic = topic
        self.acked: set[int] = set()
        self.failed = 0
        self.errors: Counter[str] = Counter()
        self.sent = 0
        self.latencies: list[float] = []

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while not stop.is_set():
            value = _RECORD.pack(self.number, self.sent) + _PAD
            sampled = self.sent % 50 == 0
            callback = self._callback(self.sent, loop.time() if sampled else None)
            try:
                self.producer.send_nowait(self.topic, value, callback=callback)
            except BackpressureError:
                await asyncio.sleep(0.005)
                continue
            self.sent += 1
            if self.sent % 64 == 0:
                ahead = self.sent / self.rate - (loop.time() - start) if self.rate else 0.0
                await asyncio.sleep(max(0.0, ahead))

    def _callback(self, seq: int, started: float | None) -> SendCallback:
        def done(ack: SendAck | None, error: LanceError | None) -> None:
            if error is not None:
                self.failed += 1
                self.errors[f"{type(error).__name__}: {str(error)[:120]}"] += 1
                return
            self.acked.add(seq)
            if started is not None:
                self.latencies.append(asyncio.get_running_loop().time() - started)

        return done


async def _read_back(port: int, topic: int) -> list[tuple[int, int]]:
    conn = await Connection.open(f"127.0.0.1:{port}", ConnectionOptions(request_timeout_s=30))
    try:
        end = await operations.end_offset(conn, topic)
        offset, tail, out = 0, b"", []
        while offset < end:
            window = await operations.fetch(conn, topic, offset, 4 * 1024 * 1024)
            offset = window.next_offset
            records, used = decode_stream(tail + bytes(window.data))
            tail = (tail + bytes(window.data))[used:]
            out += [_RECORD.unpack_from(r.value) for r in records]
        if tail:
            raise RuntimeError(f"{len(tail)} bytes of a torn record at the end of the topic")
        return out
    finally:
        await conn.close()


def _judge(report: Report, producers: list[_Producer], stored: list[tuple[int, int]]) -> None:
    report.stored = len(stored)
    seen: dict[int, set[int]] = {p.number: set() for p in producers}
    highest: dict[int, int] = {}
    for number, seq in stored:
        copies = seen.setdefault(number, set())
        if seq in copies:
            report.duplicates += 1
            continue
        copies.add(seq)
        if seq < highest.get(number, -1):
            report.order_violations += 1
        highest[number] = max(highest.get(number, -1), seq)
    for producer in producers:
        report.sent += producer.sent
        report.acked += len(producer.acked)
        report.failed += producer.failed
        for text, count in producer.errors.items():
            report.errors[text] = report.errors.get(text, 0) + count
        report.lost += len(producer.acked - seen[producer.number])


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 2)


async def run(
    *,
    seconds: float,
    producers: int = 4,
    kills: int = 3,
    cuts: int = 3,
    rate: float = 0.0,
    sample_every: float = 10.0,
    data_dir: Path | None = None,
    seed: int | None = None,
) -> Report:
    """Run chaos (or, with no kills and cuts, a soak) and return the report.

    Args:
        seconds: How long producers send.
        producers: Concurrent producers.
        kills: SIGKILL + restart cycles of the server, spread over the run.
        cuts: Times every proxied connection is reset, at random moments.
        rate: Records per second per producer (0: as fast as the window allows).
        sample_every: Seconds between memory and latency samples.
        data_dir: The server's data directory (a temporary one by default).
        seed: Seed for the random moments and the proxy.
    """
    temporary = tempfile.TemporaryDirectory(prefix="lnc-chaos-") if data_dir is None else None
    server = _Server(data_dir or Path(temporary.name if temporary else "."))
    try:
        return await _run(server, seconds, producers, (kills, cuts, rate), sample_every, seed)
    finally:
        server.kill()
        if temporary is not None:
            temporary.cleanup()


async def _run(
    server: _Server,
    seconds: float,
    producers: int,
    chaos: tuple[int, int, float],
    sample_every: float,
    seed: int | None,
) -> Report:
    kills, cuts, rate = chaos
    rng = random.Random(seed)
    report = Report(seconds=seconds, producers=producers)
    await server.start()
    fast = ReconnectConfig(base_delay_ms=20, max_delay_ms=500)
    config = ProducerConfig(reconnect=fast, delivery_timeout_s=_FLUSH_TIMEOUT, linger_ms=2)
    async with FaultProxy(f"127.0.0.1:{server.port}", seed=seed) as proxy:
        clients = []
        topic = 0
        for number in range(producers):
            producer, topic = await Producer.connect_for_topic(proxy.address, "chaos", config)
            clients.append(_Producer(number, producer, topic, rate))
        stop = asyncio.Event()
        tasks = [asyncio.create_task(c.run(stop)) for c in clients]
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        events = sorted(
            [(seconds * (i + 1) / (kills + 1), "kill") for i in range(kills)]
            + [(rng.uniform(0.1, 0.9) * seconds, "cut") for _ in range(cuts)]
        )
        start = loop.time()
        next_sample = start + sample_every
        latencies_seen = 0
        for at, what in [*events, (seconds, "end")]:
            while loop.time() < start + at:
                await asyncio.sleep(min(0.05, start + at - loop.time()))
                if loop.time() >= next_sample:
                    next_sample += sample_every
                    latencies_seen = _sample(report, server, clients, latencies_seen)
            if what == "kill":
                server.kill()
                await asyncio.sleep(rng.uniform(0.05, 0.3))
                await server.start()
                report.kills += 1
            elif what == "cut":
                proxy.cut()
                report.cuts += 1
        assert loop.time() >= end - 0.1
        stop.set()
        await asyncio.gather(*tasks)
        for client in clients:
            with contextlib.suppress(LanceError):
                await client.producer.flush(_FLUSH_TIMEOUT)
            report.reconnects += client.producer.metrics().reconnects
            await client.producer.close()
        _sample(report, server, clients, latencies_seen)
    _judge(report, clients, await _read_back(server.port, topic))
    return report


def _sample(report: Report, server: _Server, clients: list[_Producer], seen: int) -> int:
    report.rss_kib.append(server.rss_kib())
    latencies = [x for c in clients for x in c.latencies]
    fresh = latencies[seen:] if seen < len(latencies) else latencies[-1:]
    if fresh:
        report.latency_ms_p50.append(_percentile(fresh, 0.5))
        report.latency_ms_p99.append(_percentile(fresh, 0.99))
    return len(latencies)


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.chaos.harness`: run, print the report as JSON; exit 1 if not ok."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--cuts", type=int, default=5)
    parser.add_argument("--rate", type=float, default=0.0, help="records/s per producer")
    parser.add_argument("--soak", action="store_true", help="no kills, no cuts; sample memory")
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    kills, cuts = (0, 0) if args.soak else (args.kills, args.cuts)
    started = time.monotonic()
    report = asyncio.run(
        run(
            seconds=args.seconds,
            producers=args.producers,
            kills=kills,
            cuts=cuts,
            rate=args.rate,
            sample_every=args.sample_every,
            seed=args.seed,
        )
    )
    result = asdict(report) | {
        "ok": report.ok,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(result, indent=1))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
