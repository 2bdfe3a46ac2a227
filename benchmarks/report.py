"""Markdown tables from a `run.py` JSON file, for docs/benchmarks.md.

`python benchmarks/report.py RESULTS.json [--variant NAME] [--compare OTHER_VARIANT]`

Prints the targets table (median, spread, verdict) and one table of every point's main metrics
(median and spread over the repeats). With `--compare`, a column per variant and their ratio.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from run import targets

MAIN = (
    "records_per_s",
    "payload_mb_s",
    "client_cpu_us_per_record",
    "server_cpu_us_per_record",
    "records_per_batch",
    "ack_p50_ms",
    "ack_p99_ms",
    "ack_p999_ms",
    "e2e_p50_ms",
    "e2e_p99_ms",
    "e2e_p999_ms",
    "idle_consumer_cpu_pct",
    "process_cpu_pct",
    "fsync_4k_p50_ms",
    "fsync_4k_p99_ms",
    "ceiling_mb_s",
    "peak_rss_mib",
    "gc_collections",
    "gc_max_pause_ms",
)


def cell(stats: dict[str, Any] | None) -> str:
    if stats is None:
        return "n/a"
    median = stats["median"]
    text = f"{median:,.0f}" if abs(median) >= 100 else f"{median:,.3g}"
    return f"{text} (±{stats['spread'] / 2:.0%})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--variant", default=None)
    parser.add_argument("--compare", default=None, help="a second variant of the same file")
    args = parser.parse_args()
    report = json.loads(args.results.read_text())
    variant = args.variant or next(iter(report["results"]))
    results = report["results"][variant]
    print("| target case | median | target | verdict |\n|---|---|---|---|")
    for row in targets(results):
        value = "n/a" if row["value"] is None else f"{row['value']:,.3g}"
        limit = "n/a" if row["target"] is None else f"{row['target']:,.3g}"
        sign = ">=" if row["higher"] else "<="
        verdict = {True: "met", False: "**missed**", None: "not run"}[row["met"]]
        print(f"| {row['case']} | {value} | {sign} {limit} | {verdict} |")
    print()
    other = report["results"][args.compare] if args.compare else None
    header = f"| point | metric | {variant} |" + (f" {args.compare} | ratio |" if other else "")
    print(header + "\n|---|---|---|" + ("---|---|" if other else ""))
    for point, metrics in results.items():
        for metric in MAIN:
            if metric not in metrics:
                continue
            line = f"| {point} | {metric} | {cell(metrics[metric])} |"
            if other is not None:
                theirs = other.get(point, {}).get(metric)
                ratio = theirs["median"] / metrics[metric]["median"] if theirs else None
                line += f" {cell(theirs)} | {'n/a' if ratio is None else f'{ratio:.2f}x'} |"
            print(line)


if __name__ == "__main__":
    main()
