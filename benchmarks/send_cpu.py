"""Client CPU time per record of `send_async` and `send_nowait`, A/B between source trees.

On a shared machine wall-clock rates swing with the other load; the client's own CPU time
(getrusage: user + system, all its threads) per record does much less. One embedded server
(`python -m lnc_client.server`, a subprocess) serves every run. Each run is a fresh client
process with `PYTHONPATH` set to one variant's source tree; it sends N 100-byte records one
call at a time (`await send_async(...)`, or `send_nowait(...)`) then `flush()`es, once to warm
up and once measured. The variants take turns, the order flipping every pass, so drifting
load falls on each alike. The server's CPU is not counted.

Usage: python benchmarks/send_cpu.py NAME=SRC [NAME=SRC ...] [--records N] [--passes N]
  e.g. base=/tmp/base/src new=src (a tree from `git archive main src | tar -x -C /tmp/base`).
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
from lnc_client.config import ClientConfig, parse_address

KINDS = ("send_async", "send_nowait")

CLIENT = r"""
import asyncio, json, resource, sys
from lnc_client.config import ProducerConfig
from lnc_client.producer import Producer

address, topic, records, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime


async def main():
    value = b"r" * size
    config = ProducerConfig(buffer_memory=2 * records * (size + 5))  # never full: the send path
    out = {}
    async with Producer(address, config) as producer:
        for kind in ("send_async", "send_nowait"):
            send = getattr(producer, kind)
            for _ in range(2):  # warm-up, then measured
                total, system = cpu()
                if kind == "send_async":
                    for _ in range(records):
                        await send(topic, value)
                else:
                    for _ in range(records):
                        send(topic, value)
                await producer.flush()
                total_after, system_after = cpu()
                out[kind] = [(total_after - total) / records * 1e6,
                             (system_after - system) / records * 1e6]
    print(json.dumps(out))


asyncio.run(main())
"""


async def create_topic(address: str) -> int:
    parsed = parse_address(address)
    async with LanceClient(ClientConfig(host=parsed.host, port=parsed.port)) as admin:
        return (await admin.create_topic("send-cpu")).id


def run_client(source: str, address: str, topic: int, records: int, size: int) -> dict[str, list]:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(source))
    arguments = [address, str(topic), str(records), str(size)]
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, *arguments],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, list] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="NAME=SRC: a name and a source tree")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--record-size", type=int, default=100)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    variants = dict(variant.split("=", 1) for variant in args.variants)
    samples: dict[str, dict[str, list[list[float]]]] = {
        name: {kind: [] for kind in KINDS} for name in variants
    }
    with tempfile.TemporaryDirectory(prefix="lnc-send-cpu-") as data_dir:
        server = subprocess.Popen(
            [sys.executable, "-m", "lnc_client.server", "--port", "0", "--data-dir", data_dir],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            address = server.stdout.readline().strip().removeprefix("listening on ")
            topic = asyncio.run(create_topic(address))
            names = list(variants)
            for turn in range(args.passes):
                for name in names if turn % 2 == 0 else names[::-1]:
                    result = run_client(
                        variants[name], address, topic, args.records, args.record_size
                    )
                    for kind in KINDS:
                        samples[name][kind].append(result[kind])
                    print(name, json.dumps(result), flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    for name, kinds in samples.items():
        for kind, runs in kinds.items():
            cpu = sorted(run[0] for run in runs)
            system = statistics.median(run[1] for run in runs)
            print(
                f"{name:8} {kind:12} CPU per record: median {statistics.median(cpu):.3f} us "
                f"(min {cpu[0]:.3f}, max {cpu[-1]:.3f}; system {system:.3f} us), "
                f"{1 / statistics.median(cpu):.2f} M records/s per client core"
            )


if __name__ == "__main__":
    main()
