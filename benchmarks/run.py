"""The benchmark matrix: every target case of issue 12 plus the curves, JSON out.

For each repeat (after one warm-up pass that is thrown away), every point of the matrix runs
once per *variant* (a source tree: `--variant NAME=PATH/src`, default this checkout), the
variants interleaved point by point and their order flipped every pass, so a baseline and a
candidate see the same machine load and neither always runs right after the other. Each run of a
point:

1. starts the server, `python -m lnc_client.cli serve --port 0` on a fresh data directory
   (or `--server lance`: the real Rust server, built at `--lance-bin`), as a subprocess;
2. runs the case in a fresh child process (`run.py --child CASE`, see `cases.py`), which
   prints one JSON line of metrics;
3. the case reads the server's CPU (utime + stime of /proc/<pid>/stat, all threads; the pid
   comes in `LNC_BENCH_SERVER_PID`) around its timed section only, giving
   `server_cpu_us_per_record` (= seconds per million records) and `server_cpu_pct`;
4. stops the server (SIGTERM, then SIGKILL) and deletes the directory.

The output JSON holds per variant and point: median, min, max and spread ((max - min) /
median) of every metric over the repeats, the raw samples, the machine (CPUs, load average
before and after) and the targets table evaluated on the first variant.

Usage:
    python benchmarks/run.py [--quick] [--repeat 3] [--out results.json] [--only REGEX]
        [--variant base=/path/a/src --variant new=/path/b/src] [--server lance]
        [--variant ours=src --variant real=src@lance]  (same client, both servers, interleaved)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_SRC = HERE.parent / "src"
DEFAULT_LANCE = Path("/work/lance-build/src/target/release")


@dataclass(frozen=True)
class Point:
    """One cell of the matrix: a case with its parameters."""

    name: str
    case: str
    params: dict[str, Any] = field(default_factory=dict)
    full_only: bool = False


def rust_points(lance_bin: Path, quick: bool) -> list[Point]:
    """Lance's Rust `lnc-bench` and our per-record producer, same record size and connections."""
    points = []
    for connections in (1, 4):
        common = {"size": 100, "connections": connections}
        points.append(
            Point(
                f"rust_lnc_bench_{connections}conn",
                "rust_lnc_bench",
                {**common, "bin": str(lance_bin / "lnc-bench"), "seconds": 3 if quick else 10},
            )
        )
        points.append(
            Point(
                f"ours_send_async_{connections}conn",
                "produce_records",
                {**common, "mode": "send_async", "topics": 1, "records": 600_000 * connections},
            )
        )
    return points


def matrix(quick: bool) -> list[Point]:
    """The points; `quick` shrinks record counts and durations and drops the long curves."""
    q = quick
    n_batch = 1_000_000 if q else 5_000_000
    n_rec = 300_000 if q else 2_000_000
    seconds = 2.0 if q else 5.0
    points = [
        Point("disk", "disk", {"syncs": 200 if q else 1000, "chunk": 8 << 20, "seconds": 1.0}),
        Point(
            "produce_batch_100B",
            "produce_batch",
            {"size": 100, "per_call": 5000, "connections": 1, "records": n_batch},
        ),
        Point(
            "produce_send_async_100B",
            "produce_records",
            {"size": 100, "mode": "send_async", "topics": 1, "records": n_rec},
        ),
        Point(
            "produce_send_nowait_100B",
            "produce_records",
            {"size": 100, "mode": "send_nowait", "topics": 1, "records": n_rec},
        ),
        Point("consume_poll_100B", "consume", {"size": 100, "mode": "poll", "records": n_rec}),
        Point("consume_iter_100B", "consume", {"size": 100, "mode": "iter", "records": n_rec}),
        Point(
            "send_latency", "send_latency", {"size": 100, "warmup": 50, "sends": 500 if q else 2000}
        ),
        Point(
            "topics_1000_send_async",
            "produce_records",
            {"size": 100, "mode": "send_async", "topics": 1000, "records": n_rec * 2},
        ),
        Point("ack_tail_100k", "ack_tail", {"size": 100, "rate": 100_000, "seconds": seconds}),
        Point(
            "producer_rss_10M",
            "producer_rss",
            {"size": 100, "records": 1_000_000 if q else 10_000_000},
        ),
    ]
    for rate in (10, 1000, 10_000):  # 10/s: what tailing a slow topic costs
        points.append(
            Point(
                f"e2e_{rate}",
                "end_to_end",
                {"size": 100, "rate": rate, "seconds": seconds, "idle_s": 1.0 if q else 2.0},
            )
        )
    # curves
    for size in (16, 256, 4096, 65536, 1 << 20):
        records = max(200, min(n_batch, (400 << 20 if not q else 100 << 20) // (size + 5)))
        per_call = max(1, min(5000, (1 << 20) // (size + 5)))
        points.append(
            Point(
                f"curve_size_{size}B",
                "produce_batch",
                {"size": size, "per_call": per_call, "connections": 1, "records": records},
                full_only=size not in (16, 4096, 1 << 20),
            )
        )
    for connections in (1, 4, 16, 64):
        points.append(
            Point(
                f"curve_connections_{connections}",
                "produce_batch",
                {
                    "size": 100,
                    "per_call": 1000,
                    "connections": connections,
                    "records": n_batch // 2,
                },
                full_only=connections in (4, 16),
            )
        )
    for topics in (1, 10, 100):
        points.append(
            Point(
                f"curve_topics_{topics}",
                "produce_records",
                {"size": 100, "mode": "send_async", "topics": topics, "records": n_rec // 2},
                full_only=True,
            )
        )
    for rate in (1000, 10_000, 100_000, 300_000):
        points.append(
            Point(
                f"curve_rate_{rate}",
                "ack_tail",
                {"size": 100, "rate": rate, "seconds": seconds},
                full_only=rate in (1000, 10_000, 100_000),  # those are target points already
            )
        )
    return [p for p in points if not (q and p.full_only)]


# --- server process --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A server subprocess on a fresh data directory."""

    def __init__(self, kind: str, src: Path, lance_bin: Path, data_root: str | None) -> None:
        if data_root is not None:
            Path(data_root).mkdir(parents=True, exist_ok=True)
        self.data_dir = tempfile.mkdtemp(prefix="lnc-bench-", dir=data_root)
        if kind == "lance":
            port = free_port()
            command = [
                str(lance_bin / "lance"),
                "--listen",
                f"127.0.0.1:{port}",
                "--replication",
                f"127.0.0.1:{free_port()}",
                "--metrics",
                f"127.0.0.1:{free_port()}",
                "--health",
                f"127.0.0.1:{free_port()}",
                "--data-dir",
                self.data_dir,
            ]
            self.process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            self.address = f"127.0.0.1:{port}"
            _wait_listening(port, self.process)
        else:
            command = [sys.executable, "-m", "lnc_client.cli", "serve", "--port", "0"]
            command += ["--data-dir", self.data_dir]
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, text=True, env=_env(src)
            )
            assert self.process.stdout is not None
            line = self.process.stdout.readline().strip()
            if not line.startswith("listening on "):
                self.stop()
                raise RuntimeError(f"the server did not start: {line!r}")
            self.address = line.removeprefix("listening on ")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the lance server exited at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the lance server did not listen within 30 s")


def _env(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(HERE)])
    return env


# --- one run of a point ----------------------------------------------------------------------


def run_point(
    point: Point, src: Path, server_kind: str, args: argparse.Namespace
) -> dict[str, float]:
    server = Server(server_kind, src, args.lance_bin, args.data_root)
    try:
        params = dict(point.params)
        if point.case == "disk":
            params["dir"] = server.data_dir
        env = _env(src)
        env["LNC_BENCH_SERVER_PID"] = str(server.process.pid)
        child = subprocess.run(
            [sys.executable, str(HERE / "run.py"), "--child", point.case, server.address],
            input=json.dumps(params),
            capture_output=True,
            text=True,
            env=env,
            timeout=args.case_timeout,
            check=False,
        )
    finally:
        server.stop()
    if child.returncode != 0:
        raise RuntimeError(f"{point.name} failed:\n{child.stderr[-3000:]}")
    metrics: dict[str, float] = json.loads(child.stdout.strip().splitlines()[-1])
    return metrics


def summarize(samples: list[dict[str, float]]) -> dict[str, Any]:
    names = sorted({k for sample in samples for k in sample})
    summary: dict[str, Any] = {}
    for name in names:
        values = [s[name] for s in samples if name in s]
        median = statistics.median(values)
        summary[name] = {
            "median": median,
            "min": min(values),
            "max": max(values),
            "spread": (max(values) - min(values)) / median if median else 0.0,
            "samples": values,
        }
    return summary


# --- targets -----------------------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets evaluated on one variant's summarized results (medians)."""

    def get(point: str, metric: str) -> float | None:
        entry = results.get(point, {}).get(metric)
        return None if entry is None else float(entry["median"])

    rows: list[dict[str, Any]] = []

    def row(case: str, value: float | None, limit: float | None, *, higher: bool) -> None:
        met = None
        if value is not None and limit is not None:
            met = value >= limit if higher else value <= limit
        rows.append({"case": case, "value": value, "target": limit, "higher": higher, "met": met})

    for rate in (1000, 10_000):
        row(f"e2e p50 ms at {rate}/s", get(f"e2e_{rate}", "e2e_p50_ms"), 1.0, higher=False)
        row(f"e2e p99 ms at {rate}/s", get(f"e2e_{rate}", "e2e_p99_ms"), 3.0, higher=False)
        row(
            f"idle consumer CPU % ({rate}/s run)",
            get(f"e2e_{rate}", "idle_consumer_cpu_pct"),
            2.0,
            higher=False,
        )
    fsync = get("disk", "fsync_4k_p99_ms")
    ceiling = get("disk", "ceiling_mb_s")
    one = get("produce_send_async_100B", "records_per_s")
    # (case, point, metric, target, higher is better)
    table: list[tuple[str, str, str, float | None, bool]] = [
        (
            "send ack p99 ms (<= 1.5 x 4 KiB fsync p99)",
            "send_latency",
            "ack_p99_ms",
            None if fsync is None else 1.5 * fsync,
            False,
        ),
        ("ack p99.9 ms at 100k/s", "ack_tail_100k", "ack_p999_ms", 5.0, False),
        (
            "batch API records/s (>= 0.8 x disk ceiling at 105 B/record)",
            "produce_batch_100B",
            "records_per_s",
            None if ceiling is None else 0.8 * ceiling * 1e6 / 105,
            True,
        ),
        ("send_async records/s", "produce_send_async_100B", "records_per_s", 3e6, True),
        ("send_nowait records/s", "produce_send_nowait_100B", "records_per_s", 4e6, True),
        ("consume poll records/s", "consume_poll_100B", "records_per_s", 5e6, True),
        ("consume async-for records/s", "consume_iter_100B", "records_per_s", 5e6, True),
        (
            "1,000 topics records/s (>= 0.5 x one topic)",
            "topics_1000_send_async",
            "records_per_s",
            None if one is None else 0.5 * one,
            True,
        ),
        ("producer peak RSS MiB", "producer_rss_10M", "peak_rss_mib", 150.0, False),
    ]
    for case, point, metric, limit, higher in table:
        row(case, get(point, metric), limit, higher=higher)
    return rows


def print_targets(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        value = "n/a" if r["value"] is None else f"{r['value']:,.3f}"
        limit = "n/a" if r["target"] is None else f"{r['target']:,.3f}"
        verdict = {True: "MET", False: "MISSED", None: "?"}[r["met"]]
        sign = ">=" if r["higher"] else "<="
        print(f"  {verdict:6} {r['case']}: {value} (target {sign} {limit})")


# --- main ----------------------------------------------------------------------------------------


def child(case: str, address: str) -> None:
    import cases

    params = json.loads(sys.stdin.read())
    metrics = asyncio.run(cases.CASES[case](address, params))
    print(json.dumps(metrics))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, fewer curve points")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-warmup", action="store_true")
    parser.add_argument("--out", default="bench-results.json")
    parser.add_argument("--only", default="", help="regex on point names")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME=SRC_DIR, or NAME=SRC_DIR@lance to run that variant against the real server",
    )
    parser.add_argument("--server", choices=("lnc", "lance"), default="lnc")
    parser.add_argument("--lance-bin", type=Path, default=DEFAULT_LANCE)
    parser.add_argument(
        "--rust", action="store_true", help="add lnc-bench (Rust) and our matching runs"
    )
    parser.add_argument("--data-root", default=None, help="where server data directories go")
    parser.add_argument("--case-timeout", type=float, default=600)
    parser.add_argument("--child", nargs=2, metavar=("CASE", "ADDRESS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    variants = {"current": (DEFAULT_SRC, args.server)}
    if args.variant:
        variants = {}
        for spec in args.variant:
            name, _, rest = spec.partition("=")
            path, _, kind = rest.partition("@")
            variants[name] = (Path(path).resolve(), kind or args.server)
    points = matrix(args.quick) + (rust_points(args.lance_bin, args.quick) if args.rust else [])
    points = [p for p in points if re.search(args.only, p.name)]
    samples: dict[str, dict[str, list[dict[str, float]]]] = {v: {} for v in variants}
    load_before = os.getloadavg()
    started = time.time()
    failures: list[str] = []
    passes = [("warm-up", True)] if not args.no_warmup else []
    passes += [(f"repeat {i + 1}", False) for i in range(args.repeat)]
    for number, (label, warmup) in enumerate(passes):
        # the variants' order flips every pass, so none always runs right after the other
        order = list(variants.items())
        if number % 2:
            order.reverse()
        for point in points:
            if warmup and point.case in ("producer_rss", "disk"):
                continue
            for variant, (src, server_kind) in order:
                t0 = time.perf_counter()
                try:
                    metrics = run_point(point, src, server_kind, args)
                except (RuntimeError, subprocess.TimeoutExpired) as error:
                    print(f"[{label}] {variant} {point.name} FAILED: {error}", flush=True)
                    failures.append(f"{label} {variant} {point.name}: {str(error)[-300:]}")
                    continue
                took = time.perf_counter() - t0
                print(f"[{label}] {variant} {point.name} ({took:.1f} s): {_brief(metrics)}")
                if not warmup:
                    samples[variant].setdefault(point.name, []).append(metrics)
    results = {v: {p: summarize(s) for p, s in pts.items()} for v, pts in samples.items()}
    first = next(iter(variants))
    report = {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": time.time() - started,
            "cpus": os.cpu_count(),
            "machine": platform.platform(),
            "python": platform.python_version(),
            "load_before": load_before,
            "load_after": os.getloadavg(),
            "quick": args.quick,
            "repeat": args.repeat,
            "server": args.server,
            "variants": {k: f"{src} ({kind} server)" for k, (src, kind) in variants.items()},
            "points": {p.name: {"case": p.case, "params": p.params} for p in points},
            "failures": failures,
        },
        "results": results,
        "targets": targets(results[first]),
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"targets ({first}, medians of {args.repeat}):")
    print_targets(report["targets"])
    print(f"wrote {args.out}")


def _brief(metrics: dict[str, float]) -> str:
    keys = [k for k in metrics if k.endswith(("_per_s", "p50_ms", "p99_ms", "mb_s", "rss_mib"))]
    return ", ".join(f"{k}={metrics[k]:,.3f}" for k in keys[:6])


if __name__ == "__main__":
    main()
