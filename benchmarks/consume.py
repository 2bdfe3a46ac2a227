"""Consumer benchmark: records/s of StandaloneConsumer reading 100-byte records.

Starts the embedded server in a subprocess (`python -m lnc_client.server --port 0`, so client
and server each get a core), fills a topic with N records (raw pipelined `send_ingest` of large
`encode_values` batches, durable acks), then consumes them all from offset 0 and prints
records/s and MB/s for each way of reading:

* `poll`: `await consumer.poll()` in a loop, touching `result.records` (one list per window);
* `iter`: `async for record in consumer` (one record at a time);
* `poll, no prefetch`: as `poll`, with `prefetch=False` (one fetch round trip per window).

Each mode runs `--repeat` times (interleaved); the median and the best run are printed.

Usage: python benchmarks/consume.py [--records N] [--record-size B] [--max-fetch-bytes B]
       [--modes poll,iter,noprefetch] [--repeat N] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import subprocess
import tempfile
import time

from produce import start_server

from lnc_client.config import ConnectionOptions, StandaloneConfig
from lnc_client.connection import Connection
from lnc_client.consumer import StandaloneConsumer
from lnc_client.errors import LanceError
from lnc_client.operations import create_topic
from lnc_client.protocol.records import encode_values

BATCH_RECORDS = 10_000
IN_FLIGHT = 16


async def fill(address: str, records: int, size: int) -> int:
    """Create topic "bench" and write `records` values; returns its id once all are acked."""
    conn = await Connection.open(address, ConnectionOptions(request_timeout_s=60))
    try:
        topic = (await create_topic(conn, "bench")).id
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(IN_FLIGHT)
        pending: set[asyncio.Future[None]] = set()
        written = 0
        for batch_id in range(1, records // BATCH_RECORDS + 1):
            values = [b"%0100d" % (written + i) for i in range(BATCH_RECORDS)]
            assert len(values[0]) == size
            payload = encode_values(values)
            await slots.acquire()
            future: asyncio.Future[None] = loop.create_future()
            pending.add(future)

            def done(
                _: int, error: LanceError | None, future: asyncio.Future[None] = future
            ) -> None:
                slots.release()
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

            conn.send_ingest(
                topic, payload, batch_id=batch_id, record_count=BATCH_RECORDS, on_done=done
            )
            written += BATCH_RECORDS
        await asyncio.gather(*pending)
        return topic
    finally:
        await conn.close()


async def consume(
    address: str, topic: int, records: int, config: StandaloneConfig, mode: str
) -> float:
    """Read `records` records from offset 0; returns the elapsed seconds."""
    async with StandaloneConsumer(address, config) as consumer:
        received = 0
        started = time.perf_counter()
        if mode == "iter":
            async for _record in consumer:
                received += 1
                if received == records:
                    break
        else:
            while received < records:
                result = await consumer.poll()
                if result is not None:
                    received += len(result.records)
        elapsed = time.perf_counter() - started
        assert consumer.lag == 0, consumer.lag
    return elapsed


async def run(args: argparse.Namespace, address: str) -> None:
    started = time.perf_counter()
    topic = await fill(address, args.records, args.record_size)
    fill_time = time.perf_counter() - started
    total_bytes = args.records * (args.record_size + 5)
    print(f"filled {args.records:,} records ({total_bytes / 1e6:.1f} MB) in {fill_time:.2f} s")
    modes = args.modes.split(",")
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(args.repeat):
        for mode in modes:
            config = StandaloneConfig(
                f"bench-{mode}",
                topic,
                max_fetch_bytes=args.max_fetch_bytes,
                prefetch=mode != "noprefetch",
                auto_commit_interval_s=None,
                poll_timeout_s=5.0,
            )
            profiler = cProfile.Profile() if args.profile else None
            if profiler is not None:
                profiler.enable()
            times[mode].append(await consume(address, topic, args.records, config, mode))
            if profiler is not None:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    print(f"max_fetch_bytes {args.max_fetch_bytes:,}, {args.repeat} runs each (median, best):")
    for mode, samples in times.items():
        median, best = statistics.median(samples), min(samples)
        print(
            f"{mode:>10}: {args.records / median:>11,.0f} records/s "
            f"({total_bytes / median / 1e6:,.0f} MB/s), best {args.records / best:,.0f} records/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--record-size", type=int, default=100)
    parser.add_argument("--max-fetch-bytes", type=int, default=1024 * 1024)
    parser.add_argument("--modes", default="poll,iter,noprefetch")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.record_size != 100:
        parser.error("the fill step writes 100-byte values only")
    with tempfile.TemporaryDirectory(prefix="lnc-bench-") as data_dir:
        process, address = start_server(data_dir)
        try:
            asyncio.run(run(args, address))
        finally:
            stop_server(process)


def stop_server(process: subprocess.Popen[str]) -> None:
    """Terminate the server subprocess (kill it if it has not exited within 30 s)."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


if __name__ == "__main__":
    main()
