"""Where the client's CPU goes per record: a py-spy profile of one hot path, in us per record.

docs/benchmarks.md explains each missed target with such a profile. This script starts
`lnc serve` (a subprocess, on a fresh data directory), then runs a client child process in one
mode under `py-spy record` (sampling, 1,000 Hz, `--format raw`; install it with
`pip install py-spy`, it is not a dependency of the project):

* `send_async`: `await producer.send_async(topic, value)` N times, then `flush()`;
* `send_nowait`: `producer.send_nowait(topic, value)` N times (yielding every 10,000), then
  `flush()`;
* `iter`: fill a topic with N records, then `async for record in consumer` over all of them;
* `poll`: the same, with `poll()` and a loop over each result's records.

Default `ProducerConfig` and `StandaloneConfig`, 100-byte records. The child prints its CPU
time (getrusage) per record over the measured loop; the samples taken inside the event loop
are then shared out over that time, so each function's inclusive share reads as microseconds
of client CPU per record.

Usage: python benchmarks/profile.py MODE [--records N] [--top N] [--keep FILE]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLIENT = r"""
import asyncio, resource, sys
from lnc_client.admin import LanceClient
from lnc_client.config import ClientConfig, StandaloneConfig, parse_address
from lnc_client.consumer import StandaloneConsumer
from lnc_client.producer import Producer

address, mode, records = sys.argv[1], sys.argv[2], int(sys.argv[3])


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main():
    parsed = parse_address(address)
    async with LanceClient(ClientConfig(host=parsed.host, port=parsed.port)) as admin:
        topic = (await admin.create_topic("profile")).id
    value = b"x" * 100
    async with Producer(address) as producer:
        started = cpu()
        if mode == "send_async":
            send = producer.send_async
            for _ in range(records):
                await send(topic, value)
        elif mode == "send_nowait":
            send = producer.send_nowait
            for _ in range(records // 10_000):
                for _ in range(10_000):
                    send(topic, value)
                await asyncio.sleep(0)
        else:
            for _ in range(records // 1000):
                await producer.send_batch_async(topic, [value] * 1000)
        await producer.flush()
        used = cpu() - started
    if mode in ("iter", "poll"):
        config = StandaloneConfig("profile", topic, auto_commit_interval_s=None)
        async with StandaloneConsumer(address, config) as consumer:
            got, started = 0, cpu()
            if mode == "iter":
                async for _record in consumer:
                    got += 1
                    if got == records:
                        break
            else:
                while got < records:
                    result = await consumer.poll()
                    if result is not None:
                        for _record in result.records:
                            got += 1
            used = cpu() - started
    print(f"{used / records * 1e6:.4f}")


asyncio.run(main())
"""


def start_server(data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    """`lnc serve --port 0` on `data_dir`; returns the process and the address it printed."""
    server = subprocess.Popen(
        [sys.executable, "-m", "lnc_client.cli", "serve", "--port", "0", "-d", data_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert server.stdout is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        line = server.stdout.readline().decode()
        for word in line.split():
            if word.startswith("127.0.0.1:"):
                return server, word.rstrip(",)")
    server.kill()
    raise SystemExit("lnc serve did not say where it listens")


def summarize(raw: Path, us_per_record: float, top: int) -> list[tuple[float, float, str]]:
    """(share, us per record, function) for the `top` functions by inclusive samples."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "run_until_complete" not in stack:
            continue  # start-up: imports, connecting
        total += int(count)
        names = {frame.split(":")[0] + ")" for frame in stack.split(";")}
        for name in names:
            inclusive[name] += int(count)
    return [
        (count / total, count / total * us_per_record, name)
        for name, count in inclusive.most_common(top)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("send_async", "send_nowait", "iter", "poll"))
    parser.add_argument("--records", type=int, default=3_000_000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--keep", type=Path, help="also keep py-spy's raw output here")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise SystemExit("needs py-spy: pip install py-spy")
    with tempfile.TemporaryDirectory(prefix="lnc-profile-") as tmp:
        server, address = start_server(os.path.join(tmp, "data"))
        try:
            raw = Path(tmp) / "profile.raw"
            child = [sys.executable, "-c", CLIENT, address, args.mode, str(args.records)]
            unprofiled = float(subprocess.run(child, capture_output=True, check=True).stdout)
            record = [py_spy, "record", "-r", "1000", "--format", "raw", "-o", str(raw), "--"]
            subprocess.run([*record, *child], capture_output=True, check=True)
        finally:
            server.terminate()
            server.wait()
        print(f"{args.mode}: {unprofiled:.3f} us of client CPU per record (without py-spy)")
        for share, us, name in summarize(raw, unprofiled, args.top):
            print(f"{share * 100:5.1f}%  {us:6.3f} us  {name}")
        if args.keep:
            shutil.copy(raw, args.keep)


if __name__ == "__main__":
    main()
