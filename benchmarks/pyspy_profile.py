"""Where the client's CPU goes per record: a py-spy profile of one benchmark case, in us per record.

docs/benchmarks.md explains each missed target with such a profile. This script starts
`lnc serve` (a subprocess, on a fresh data directory) and runs the very case of `run.py`'s point
(`run.py --child`, the code of `cases.py`) twice: once plain, for the client's CPU time per
record (getrusage over the measured section), and once under `py-spy record` (sampling,
1,000 Hz, `--format raw`; install it with `pip install py-spy`, it is not a dependency of the
project). The samples taken in the event loop (setting-up frames such as `_fill` and
`create_topics` left out; the Acks and replies run in the loop's own callbacks, not under the
case's frame) are then shared out over that CPU time, so
each function's inclusive share reads as microseconds of client CPU per record. The share of
`EpollSelector.select` is the loop waiting (py-spy samples wall time), not CPU.

Usage: python benchmarks/pyspy_profile.py POINT [--records N] [--top N] [--keep FILE]
  POINT is one of produce_send_async_100B, produce_send_nowait_100B, consume_poll_100B,
  consume_iter_100B.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
POINTS = {
    "produce_send_async_100B": ("produce_records", {"mode": "send_async", "topics": 1}),
    "produce_send_nowait_100B": ("produce_records", {"mode": "send_nowait", "topics": 1}),
    "consume_poll_100B": ("consume", {"mode": "poll"}),
    "consume_iter_100B": ("consume", {"mode": "iter"}),
}
SETTING_UP = ("_fill (", "create_topics (", "Producer.connect (", "Producer.start (")


def start_server(data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    """`lnc serve --port 0` on `data_dir`; returns the process and the address it listens on."""
    server = subprocess.Popen(
        [sys.executable, "-m", "lnc_client.cli", "serve", "--port", "0", "-d", data_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert server.stdout is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        words = server.stdout.readline().decode().split()
        if words[:2] == ["listening", "on"]:
            return server, words[2]
    server.kill()
    raise SystemExit("lnc serve did not say where it listens")


def measured(stack: str) -> bool:
    """Whether a sample lies in the case's measured section."""
    return "run_until_complete" in stack and not any(frame in stack for frame in SETTING_UP)


def summarize(raw: Path, us_per_record: float, top: int) -> list[tuple[float, float, str]]:
    """(share, us per record, function) for the `top` functions by inclusive samples."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not measured(stack):
            continue
        total += int(count)
        for name in {frame.split(":")[0] + ")" for frame in stack.split(";")}:
            inclusive[name] += int(count)
    return [
        (count / total, count / total * us_per_record, name)
        for name, count in inclusive.most_common(top)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("point", choices=sorted(POINTS))
    parser.add_argument("--records", type=int, default=3_000_000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--keep", type=Path, help="also keep py-spy's raw output here")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise SystemExit("needs py-spy: pip install py-spy")
    case, params = POINTS[args.point]
    params = {**params, "size": 100, "records": args.records}
    with tempfile.TemporaryDirectory(prefix="lnc-profile-") as tmp:
        server, address = start_server(str(Path(tmp) / "data"))
        child = [sys.executable, str(HERE / "run.py"), "--child", case, address]
        raw = Path(tmp) / "profile.raw"
        spy = [py_spy, "record", "-r", "1000", "--format", "raw", "-o", str(raw), "--"]
        try:
            plain = subprocess.run(
                child, input=json.dumps(params), capture_output=True, text=True, check=True
            )
            subprocess.run(
                [*spy, *child], input=json.dumps(params), capture_output=True, text=True, check=True
            )
        finally:
            server.terminate()
            server.wait()
        us = json.loads(plain.stdout)["client_cpu_us_per_record"]
        print(f"{args.point}: {us:.3f} us of client CPU per record (without py-spy)")
        for share, us_share, name in summarize(raw, us, args.top):
            print(f"{share * 100:5.1f}%  {us_share:6.3f} us  {name}")
        if args.keep:
            shutil.copy(raw, args.keep)


if __name__ == "__main__":
    main()
