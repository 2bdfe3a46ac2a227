"""`lnc demo`: the end-to-end demonstration, and the README's main job.

It starts the embedded server as a child process (`python -m lnc_client.server --port 0`) on a
temporary directory, so that client and server each get a core, then:

1. creates a topic with `LanceClient`;
2. runs `workload.run_workload`, the workload `lnc bench` runs too: produces N records of a fixed
   size with `Producer.send_async` (each record carries its sequence number) and `flush()`es, so
   every record counted was acknowledged durably; consumes them back with `StandaloneConsumer`
   and checks that every record arrives, in order, with exactly the bytes sent; times single
   `send` calls (send, wait for the durable ack) for latency percentiles. A progress bar on
   stderr follows each phase when stderr is a terminal;
3. stops the server and deletes the directory, whatever happened.

It prints throughput and latency and exits 0 only when every record was verified.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import Final

from lnc_client.cli.common import Endpoint
from lnc_client.cli.workload import SEQUENCE_DIGITS, Workload, percentile, run_workload

__all__ = ["add_demo_parser", "run_demo"]

_SERVER_START_TIMEOUT_S: Final = 30.0
_SERVER_STOP_TIMEOUT_S: Final = 15.0


def add_demo_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `demo` subcommand to the `lnc` parser."""
    parser = subparsers.add_parser(
        "demo",
        help="Produce, consume and verify records against an embedded server.",
        description="Start the embedded server on a temporary directory, produce records, "
        "consume them back, verify every one, and print throughput and latency.",
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="records to produce")
    parser.add_argument("--record-size", type=int, default=100, help="bytes per record")
    parser.add_argument(
        "--latency-samples", type=int, default=1000, help="single sends timed for latency"
    )
    parser.add_argument(
        "--batch-size", type=int, default=256 * 1024, help="producer batch size in bytes"
    )


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo with parsed arguments; return the exit status."""
    if args.record_size < SEQUENCE_DIGITS or args.records < 1 or args.latency_samples < 0:
        print(
            f"lnc demo: need --records >= 1, --record-size >= {SEQUENCE_DIGITS}, "
            "--latency-samples >= 0",
            file=sys.stderr,
        )
        return 2
    options = Workload(args.records, args.record_size, args.batch_size, args.latency_samples)
    return asyncio.run(_demo(options))


@contextlib.asynccontextmanager
async def _server_process(data_dir: str) -> AsyncIterator[str]:
    """Run `python -m lnc_client.server` on `data_dir`; yield its address; always stop it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lnc_client.server",
        "--data-dir",
        data_dir,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(_SERVER_START_TIMEOUT_S):
            line = (await process.stdout.readline()).decode().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the server did not start: {line!r}")
        yield line.removeprefix("listening on ")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(_SERVER_STOP_TIMEOUT_S):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def _demo(options: Workload) -> int:
    with tempfile.TemporaryDirectory(prefix="lnc-demo-") as data_dir:
        async with _server_process(data_dir) as address:
            print(f"lnc demo: embedded server listening on {address}, data in {data_dir}")
            where = Endpoint.plain(address)
            async with where.client() as admin:
                topic = await admin.create_topic(f"demo-{os.getpid()}")
                latency_topic = await admin.create_topic(f"demo-latency-{os.getpid()}")
            print(f"topic {topic.name!r} has id {topic.id}", flush=True)
            report = await run_workload(where, topic.id, latency_topic.id, options)
    _print_report(options, report.produce_s, report.consume_s, report.latencies)
    print("lnc demo: OK")
    return 0


def _print_report(
    options: Workload, produce_s: float, consume_s: float, timings: list[float]
) -> None:
    rate = options.records / produce_s
    print(
        f"produced {options.records:,} records of {options.record_size} B in "
        f"{produce_s:.2f} s: {rate:,.0f} records/s "
        f"({rate * options.record_size / 1e6:.1f} MB/s), every one acknowledged durably"
    )
    print(
        f"consumed {options.records:,} records in {consume_s:.2f} s: "
        f"{options.records / consume_s:,.0f} records/s, every one verified, in order"
    )
    if timings:
        p50, p99 = percentile(timings, 0.50), percentile(timings, 0.99)
        print(
            f"single send latency over {len(timings):,} sends (durable ack): "
            f"p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, max {timings[-1] * 1e3:.2f} ms"
        )
