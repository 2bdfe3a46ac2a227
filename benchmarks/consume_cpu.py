"""Client CPU time per record of consuming from the beginning, A/B between source trees.

The consume twin of `send_cpu.py` (issue 12: >= 5 M records/s means <= 0.2 us of client CPU
per record). One embedded server (a thread of this process, not of the measured clients)
holds one topic of N 100-byte records, written once. Each run is a fresh client process with
`PYTHONPATH` set to one variant's source tree; it reads all N records from offset 0 with a
`StandaloneConsumer`, in each mode:

* `poll`: `await consumer.poll()`, counting `len(result.records)` (no record object needed);
* `touch`: `await consumer.poll()`, iterating every record of `result.records` (one object each);
* `iter`: `async for record in consumer.records(limit=N)`.

Measured: getrusage (user + system) of the client around the read loop, divided by N; the
variants take turns, the order flipping every pass. The server's CPU is not counted.

Usage: python benchmarks/consume_cpu.py NAME=SRC [NAME=SRC ...] [--records N] [--passes N]
  [--modes poll,touch,iter]; e.g. base=/tmp/base/src new=src (a tree from
  `git archive main src | tar -x -C /tmp/base`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile

from lnc_client.admin import LanceClient
from lnc_client.config import ClientConfig, ProducerConfig, parse_address
from lnc_client.producer import Producer
from lnc_client.server.app import ServerThread

MODES = ("poll", "touch", "iter")
SIZE = 100

CLIENT = r"""
import asyncio, json, resource, sys
from lnc_client.config import StandaloneConfig
from lnc_client.consumer import StandaloneConsumer

address, topic, records = sys.argv[1], sys.argv[2], int(sys.argv[3])


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def count_records(records):
    return sum(1 for _record in records)  # builds and drops every record object


async def read(mode):
    config = StandaloneConfig(f"cpu-{mode}", topic_name=topic, auto_commit_interval_s=None,
                              poll_timeout_s=5.0)
    count = len if mode == "poll" else count_records
    async with StandaloneConsumer(address, config) as consumer:
        started, left = cpu(), records
        if mode == "iter":
            async for _record in consumer.records(limit=records):
                pass
        while mode != "iter" and left > 0:
            result = await consumer.poll()
            left -= 0 if result is None else count(result.records)
        return (cpu() - started) / records * 1e6


print(json.dumps({mode: asyncio.run(read(mode)) for mode in sys.argv[4:]}))
"""


async def fill(address: str, records: int) -> str:
    """Write `records` 100-byte records to topic "consume-cpu"; returns its name."""
    parsed = parse_address(address)
    async with LanceClient(ClientConfig(host=parsed.host, port=parsed.port)) as admin:
        await admin.create_topic("consume-cpu")
    batch = [b"%0100d" % i for i in range(10_000)]
    async with Producer(address, ProducerConfig()) as producer:
        for start in range(0, records, len(batch)):
            await producer.send_batch_async("consume-cpu", batch[: records - start])
        await producer.flush()
    return "consume-cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="NAME=SRC: a name and a source tree")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    variants = dict(variant.split("=", 1) for variant in args.variants)
    modes = args.modes.split(",")
    samples = {name: {mode: [] for mode in modes} for name in variants}
    with (
        tempfile.TemporaryDirectory(prefix="lnc-consume-cpu-") as data_dir,
        ServerThread(data_dir, port=0) as server,
    ):
        topic = asyncio.run(fill(server.address, args.records))
        names = list(variants)
        for turn in range(args.passes):
            for name in names if turn % 2 == 0 else names[::-1]:
                env = dict(os.environ, PYTHONPATH=os.path.abspath(variants[name]))
                command = [sys.executable, "-c", CLIENT, server.address, topic, str(args.records)]
                done = subprocess.run(
                    [*command, *modes], env=env, capture_output=True, text=True, check=True
                )
                result: dict[str, float] = json.loads(done.stdout)
                for mode in modes:
                    samples[name][mode].append(result[mode])
                print(name, json.dumps(result), flush=True)
    for name, by_mode in samples.items():
        for mode, runs in by_mode.items():
            median = statistics.median(runs)
            print(
                f"{name:8} {mode:6} CPU per record: median {median:.3f} us (min {min(runs):.3f},"
                f" max {max(runs):.3f}), {1 / median:.2f} M records/s per client core"
            )


if __name__ == "__main__":
    main()
