"""`lnc bench`: produce and consume throughput and send latency against any server.

Data flow: a fresh topic (`bench-<pid>-<time>`, deleted afterwards unless `--keep`) or the one
given with `-t` receives `--records` records of `--record-size` bytes; `workload.run_workload`
produces them (live progress bar on stderr), consumes and verifies every one (another bar), then
times `--latency-samples` single sends. The result is printed as text, or as one JSON object
with `--json`: throughput in records/s and MB/s, latency percentiles in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Final

from lnc_client.cli.common import CliError, add_server_options, endpoint, topic_arg
from lnc_client.cli.workload import SEQUENCE_DIGITS, Report, Workload, percentile, run_workload

__all__ = ["add_bench_parser"]

_PERCENTILES: Final = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999))


def add_bench_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `bench` subcommand to the `lnc` parser."""
    summary = "Benchmark a server: produce and consume throughput, send latency"
    parser = subparsers.add_parser("bench", help=summary, description=summary + ".")
    add_server_options(parser)
    parser.add_argument(
        "-t", "--topic", type=topic_arg, help="topic id or name (default: a new temporary topic)"
    )
    parser.add_argument(
        "-n", "--records", type=int, default=100_000, help="records to send (100000)"
    )
    parser.add_argument("--record-size", type=int, default=100, help="bytes per record (100)")
    parser.add_argument(
        "--batch-size", type=int, default=256 * 1024, help="producer batch size in bytes"
    )
    parser.add_argument(
        "--latency-samples", type=int, default=1000, help="single sends timed (1000)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary topic")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=_bench)


async def _bench(args: argparse.Namespace) -> int:
    if args.records < 1 or args.record_size < SEQUENCE_DIGITS or args.latency_samples < 0:
        raise CliError(
            f"need --records >= 1, --record-size >= {SEQUENCE_DIGITS}, --latency-samples >= 0"
        )
    workload = Workload(args.records, args.record_size, args.batch_size, args.latency_samples)
    where = endpoint(args)
    async with where.client() as client:
        if args.topic is None:
            topic = await client.create_topic_once(f"bench-{os.getpid()}-{time.time_ns()}")
        else:
            topic = await client.get_topic(args.topic)
        try:
            if args.topic is not None and await client.end_offset(topic.id):
                raise CliError(f"topic {topic.name!r} is not empty: bench needs an empty topic")
            report = await run_workload(where, topic.id, topic.id, workload)
        finally:
            if args.topic is None and not args.keep:
                await client.delete_topic(topic.id)
    _print(args, workload, report, where.text)
    return 0


def _print(args: argparse.Namespace, workload: Workload, report: Report, server: str) -> None:
    megabytes = workload.records * workload.record_size / 1e6
    result: dict[str, object] = {
        "server": server,
        "records": workload.records,
        "record_size": workload.record_size,
        "produce": {
            "seconds": round(report.produce_s, 6),
            "records_per_s": round(workload.records / report.produce_s, 1),
            "mb_per_s": round(megabytes / report.produce_s, 3),
        },
        "consume": {
            "seconds": round(report.consume_s, 6),
            "records_per_s": round(workload.records / report.consume_s, 1),
            "mb_per_s": round(megabytes / report.consume_s, 3),
        },
        "latency_ms": {
            "samples": len(report.latencies),
            **{
                name: round(percentile(report.latencies, fraction) * 1e3, 3)
                for name, fraction in _PERCENTILES
            },
            "max": round(max(report.latencies, default=0.0) * 1e3, 3),
        },
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"bench against {server}: {workload.records:,} records of {workload.record_size} B")
    for phase, outcome in (("produce", "acknowledged"), ("consume", "verified")):
        numbers = result[phase]
        assert isinstance(numbers, dict)
        print(
            f"  {phase:<8} {numbers['records_per_s']:>12,.0f} records/s "
            f"{numbers['mb_per_s']:>9.2f} MB/s  ({numbers['seconds']:.2f} s, "
            f"every record {outcome})"
        )
    if report.latencies:
        latency = result["latency_ms"]
        assert isinstance(latency, dict)
        cells = "  ".join(f"{name} {latency[name]:.3f}" for name, _ in _PERCENTILES)
        print(
            f"  latency  {cells}  max {latency['max']:.3f} ms "
            f"({len(report.latencies):,} single sends, durable ack)"
        )
