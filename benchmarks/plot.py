"""PNG plots of the curves in a `run.py` JSON file (needs the `bench` extra: matplotlib).

`python benchmarks/plot.py RESULTS.json [--out docs/img]` writes:

* `throughput_vs_record_size.png`: records/s and MB/s of the batch API, 16 B to 1 MiB;
* `throughput_vs_connections.png`: records/s of the batch API over 1 to 64 producers;
* `throughput_vs_topics.png`: records/s of one `send_async` producer over 1 to 1,000 topics;
* `latency_vs_rate.png`: ack latency p50/p99/p99.9 against the offered rate.

Each point is the median of the repeats; the error bars span min to max.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def series(
    results: dict[str, Any], pattern: str, metric: str
) -> list[tuple[float, dict[str, Any]]]:
    """(x, stats) of every point whose name matches `pattern` (x = its first group), sorted."""
    found = []
    for name, metrics in results.items():
        match = re.fullmatch(pattern, name)
        if match and metric in metrics:
            found.append((float(match[1]), metrics[metric]))
    return sorted(found, key=lambda item: item[0])


def errorbar(
    axis: Any, points: list[tuple[float, dict[str, Any]]], label: str, scale: float = 1.0
) -> None:
    xs = [x for x, _ in points]
    medians = [s["median"] / scale for _, s in points]
    low = [(s["median"] - s["min"]) / scale for _, s in points]
    high = [(s["max"] - s["median"]) / scale for _, s in points]
    axis.errorbar(xs, medians, yerr=[low, high], marker="o", capsize=3, label=label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--variant", default=None)
    args = parser.parse_args()
    report = json.loads(args.results.read_text())
    variant = args.variant or next(iter(report["results"]))
    results = report["results"][variant]
    # the target points are the curves' missing x values
    aliases = {
        "produce_batch_100B": "curve_size_100B",
        "topics_1000_send_async": "curve_topics_1000",
        "produce_send_async_100B": "curve_topics_1",
        "ack_tail_100k": "curve_rate_100000",
    }
    for name, alias in aliases.items():
        if name in results and alias not in results:
            results[alias] = results[name]
    for rate in (1000, 10_000):
        if f"e2e_{rate}" in results and f"curve_rate_{rate}" not in results:
            results[f"curve_rate_{rate}"] = results[f"e2e_{rate}"]
    args.out.mkdir(parents=True, exist_ok=True)
    meta = report["meta"]
    title = f"{meta['cpus']} CPUs, {meta['date']}, median of {meta['repeat']}"

    figure, left = plt.subplots(figsize=(7, 4))
    errorbar(left, series(results, r"curve_size_(\d+)B", "records_per_s"), "records/s", 1e6)
    left.set(xscale="log", yscale="log", xlabel="record size (bytes)", ylabel="M records/s")
    right = left.twinx()
    points = series(results, r"curve_size_(\d+)B", "payload_mb_s")
    right.plot([x for x, _ in points], [s["median"] for _, s in points], "s--", color="C1")
    right.set_ylabel("MB/s (dashed)")
    left.set_title(f"send_batch_async throughput vs record size\n{title}", fontsize=9)
    figure.tight_layout()
    figure.savefig(args.out / "throughput_vs_record_size.png", dpi=100)

    for name, pattern, xlabel, metric_title in (
        ("connections", r"curve_connections_(\d+)", "producers (one connection each)", "batch API"),
        ("topics", r"curve_topics_(\d+)", "topics (round-robin)", "send_async"),
    ):
        figure, axis = plt.subplots(figsize=(7, 4))
        errorbar(axis, series(results, pattern, "records_per_s"), "records/s", 1e6)
        axis.set(xscale="log", xlabel=xlabel, ylabel="M records/s")
        axis.set_ylim(bottom=0)
        axis.set_title(f"{metric_title} throughput vs {name}, 100 B records\n{title}", fontsize=9)
        figure.tight_layout()
        figure.savefig(args.out / f"throughput_vs_{name}.png", dpi=100)

    figure, axis = plt.subplots(figsize=(7, 4))
    for metric, label in (("ack_p50_ms", "p50"), ("ack_p99_ms", "p99"), ("ack_p999_ms", "p99.9")):
        errorbar(axis, series(results, r"curve_rate_(\d+)", metric), f"ack {label}")
    axis.set(xscale="log", yscale="log", xlabel="offered records/s", ylabel="ms")
    axis.legend()
    axis.set_title(f"ack latency (send to callback) vs rate, defaults\n{title}", fontsize=9)
    figure.tight_layout()
    figure.savefig(args.out / "latency_vs_rate.png", dpi=100)
    print(f"wrote 4 plots to {args.out}")


if __name__ == "__main__":
    main()
