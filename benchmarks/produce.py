"""Producer benchmark: batch throughput, per-record throughput and single-send latency.

Starts the embedded server in a subprocess (`python -m lnc_client.server --port 0`, so client
and server each get a core), creates a topic, and measures with durable acks:

1. `send_batch_async` with many 100-byte values per call (`encode_values` under the hood),
   then `flush()`: records/s counting acknowledged records only.
2. `send_async` one record at a time, then `flush()`: acknowledged records/s.
3. `send` one record at a time, waiting for each ack: p50/p99/max latency.

Usage: python benchmarks/produce.py [--records N] [--record-size B] [--batch-values N]
       [--latency-sends N] [--compression]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time

from lnc_client.admin import LanceClient
from lnc_client.config import ClientConfig, ProducerConfig, parse_address
from lnc_client.producer import Producer


def start_server(data_dir: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "lnc_client.server", "--port", "0", "--data-dir", data_dir],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("listening on "):
        process.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return process, line.removeprefix("listening on ")


async def batch_throughput(
    address: str, topic: int, records: int, size: int, per_call: int, config: ProducerConfig
) -> float:
    values = [bytes([65 + i % 26]) * size for i in range(per_call)]
    async with Producer(address, config) as producer:
        started = time.perf_counter()
        for _ in range(records // per_call):
            await producer.send_batch_async(topic, values)
        await producer.flush()
        elapsed = time.perf_counter() - started
        acked = producer.metrics().records_acked
    return acked / elapsed


async def record_throughput(
    address: str, topic: int, records: int, size: int, config: ProducerConfig
) -> float:
    value = b"r" * size
    async with Producer(address, config) as producer:
        send_async = producer.send_async
        started = time.perf_counter()
        for _ in range(records):
            await send_async(topic, value)
        await producer.flush()
        elapsed = time.perf_counter() - started
        acked = producer.metrics().records_acked
    return acked / elapsed


async def send_latency(
    address: str, topic: int, sends: int, size: int, config: ProducerConfig
) -> list[float]:
    value = b"l" * size
    samples = []
    async with Producer(address, config) as producer:
        for _ in range(50):
            await producer.send(topic, value)
        for _ in range(sends):
            started = time.perf_counter()
            await producer.send(topic, value)
            samples.append(time.perf_counter() - started)
    return sorted(samples)


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted samples, in milliseconds."""
    index = min(len(samples) - 1, max(0, round(fraction * len(samples)) - 1))
    return samples[index] * 1000


async def run(args: argparse.Namespace, address: str) -> None:
    parsed = parse_address(address)
    async with LanceClient(ClientConfig(host=parsed.host, port=parsed.port)) as admin:
        topic = (await admin.create_topic("bench")).id
    config = ProducerConfig(
        batch_size=args.batch_size,
        compression=args.compression,
        max_pending_acks=args.max_pending_acks,
        buffer_memory=64 * 1024 * 1024,
    )
    batch = await batch_throughput(
        address, topic, args.records, args.record_size, args.batch_values, config
    )
    print(f"send_batch ({args.batch_values} x {args.record_size} B per call): {batch:,.0f} rec/s")
    single = await record_throughput(address, topic, args.records, args.record_size, config)
    print(f"send_async (one {args.record_size} B record per call): {single:,.0f} rec/s")
    samples = await send_latency(address, topic, args.latency_sends, args.record_size, config)
    print(
        f"send latency over {len(samples)} sends: p50 {percentile(samples, 0.5):.3f} ms, "
        f"p99 {percentile(samples, 0.99):.3f} ms, max {samples[-1] * 1000:.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--record-size", type=int, default=100)
    parser.add_argument("--batch-values", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=256 * 1024)
    parser.add_argument("--max-pending-acks", type=int, default=64)
    parser.add_argument("--latency-sends", type=int, default=1000)
    parser.add_argument("--compression", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lnc-bench-") as data_dir:
        process, address = start_server(data_dir)
        try:
            asyncio.run(run(args, address))
        finally:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            if process.poll() is None:
                process.kill()
                process.wait()


if __name__ == "__main__":
    main()
