"""`python -m lnc_client.groups`: run a group coordinator or a worker from the command line.

Both print one line per event on stdout (flushed), for scripts and tests:

* `coordinator`: `JOIN <host:port>` once listening, then `GENERATION <n> <json assignments>`
  whenever the generation changes.
* `worker`: `JOINED <generation> <topics>`, `ASSIGNED <generation> <topics>` on a rebalance,
  then per batch `BATCH <topic> <start> <end>` and, once the batch is processed, one
  `REC <topic> <payload>` line per record (payload decoded as UTF-8, errors replaced).
  `--stall-on TEXT` makes the worker stop, mid-batch, before printing a batch that holds a
  record TEXT (it prints `STALL <topic>` and waits to be killed): a crash in the middle of a
  batch, for at-least-once tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from lnc_client.groups.assignment import AssignmentStrategy
from lnc_client.groups.coordinator import GroupConfig, GroupCoordinator
from lnc_client.groups.worker import GroupedConsumer, WorkerConfig


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _topics(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


async def _coordinate(args: argparse.Namespace) -> None:
    config = GroupConfig(
        args.group,
        topics=_topics(args.topics),
        assignment_strategy=AssignmentStrategy(args.strategy),
        session_timeout_s=args.session_timeout,
        coordinator_addr=args.listen,
    )
    async with GroupCoordinator(args.server, config) as coordinator:
        _say(f"JOIN {coordinator.join_address}")
        seen = -1
        while True:
            if coordinator.generation != seen:
                seen = coordinator.generation
                assignments = {k: list(v) for k, v in sorted(coordinator.get_assignments().items())}
                _say(f"GENERATION {seen} {json.dumps(assignments, separators=(',', ':'))}")
            await asyncio.sleep(0.05)


async def _work(args: argparse.Namespace) -> None:
    config = WorkerConfig(
        args.worker_id,
        group_id=args.group,
        heartbeat_interval_s=args.heartbeat,
        offset_dir=args.offset_dir,
        auto_commit_interval_s=args.commit_interval,
    )
    stall = args.stall_on.encode() if args.stall_on else None
    async with GroupedConsumer(args.server, args.coordinator, config) as worker:
        _say(f"JOINED {worker.generation} {list(worker.assignments)}")
        shown = worker.assignments
        async for batch in worker.batches(limit=args.limit):
            if worker.assignments != shown:
                shown = worker.assignments
                _say(f"ASSIGNED {worker.generation} {list(shown)}")
            result = batch.result
            _say(f"BATCH {batch.topic_id} {result.start_offset} {result.end_offset}")
            if stall is not None and any(r.value == stall for r in result.records):
                _say(f"STALL {batch.topic_id}")
                await asyncio.Event().wait()
            for record in result.records:
                text = record.value.decode("utf-8", errors="replace")
                _say(f"REC {batch.topic_id} {text}")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m lnc_client.groups",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    coordinator = commands.add_parser("coordinator", help="run a group coordinator")
    coordinator.add_argument("--server", required=True, help="LWP server host:port")
    coordinator.add_argument("--group", default="group")
    coordinator.add_argument("--topics", default="", help="topic ids, e.g. 1,2,3 (default: all)")
    coordinator.add_argument("--listen", default="127.0.0.1:19920")
    coordinator.add_argument("--session-timeout", type=float, default=30.0)
    coordinator.add_argument(
        "--strategy", default="round_robin", choices=[s.value for s in AssignmentStrategy]
    )
    worker = commands.add_parser("worker", help="run a worker that prints what it processes")
    worker.add_argument("--server", required=True, help="LWP server host:port")
    worker.add_argument("--coordinator", required=True, help="coordinator host:port")
    worker.add_argument("--worker-id", required=True)
    worker.add_argument("--group", default="", help="offset name shared by the group")
    worker.add_argument("--heartbeat", type=float, default=3.0)
    worker.add_argument("--commit-interval", type=float, default=1.0)
    worker.add_argument("--offset-dir", default=None)
    worker.add_argument("--limit", type=int, default=None, help="stop after N batches")
    worker.add_argument("--stall-on", default=None, help="hang mid-batch on this record")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_coordinate(args) if args.command == "coordinator" else _work(args))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
