"""Regression check: compare two `run.py` JSON files and fail on a drop of more than 15%.

`python benchmarks/compare.py BASELINE NEW [--threshold 0.15] [--variant NAME]
[--new-variant NAME] [--tails]`

For every point and metric present in both files (first variant of each unless `--variant`;
`--new-variant` picks another one in NEW, so `compare.py ab.json ab.json --variant main
--new-variant new` checks an interleaved A/B run),
the medians are compared in the metric's own direction, read from its name: `*_per_s` and
`*_mb_s` are better higher; `*_ms`, `*_us*`, `*_pct` and `*_mib` better
lower. A metric is a regression when NEW is worse than BASELINE by more than the threshold
(higher-better: new < base x (1 - t); lower-better: new > base x (1 + t)).

Tail latencies (p99.9 and max) and the disk probe are reported but not gated unless `--tails`:
on a shared machine they move more than 15% from run to run on their own. Exit status 1 when
something regressed, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HIGHER = ("_per_s", "_mb_s")
LOWER = ("_ms", "_us", "_us_per_record", "_pct", "_mib")
UNGATED_POINTS = ("disk",)
TAILS = ("_p999_ms", "_max_ms")
UTILIZATION = ("server_cpu_pct",)
"""Busy shares that grow with throughput (more records per second, more CPU per second): not a
cost, so neither better nor worse; `server_cpu_us_per_record` is the cost."""


@dataclass(frozen=True)
class Change:
    """One metric of one point, baseline against new."""

    point: str
    metric: str
    base: float
    new: float
    higher_is_better: bool
    gated: bool

    @property
    def ratio(self) -> float:
        """new / base (inf when base is 0)."""
        return self.new / self.base if self.base else float("inf")

    def regressed(self, threshold: float) -> bool:
        """Whether the change is worse than `threshold` (a fraction) in the metric's direction."""
        if self.higher_is_better:
            return self.new < self.base * (1 - threshold)
        return self.new > self.base * (1 + threshold)


def direction(metric: str) -> bool | None:
    """True when higher is better, False when lower is, None for metrics not compared."""
    if metric in UTILIZATION:
        return None
    if metric.endswith(HIGHER):
        return True
    if metric.endswith(LOWER):
        return False
    return None


def medians(report: dict[str, Any], variant: str | None) -> dict[str, dict[str, float]]:
    """{point: {metric: median}} of one variant of a run.py report."""
    results = report["results"]
    name = variant if variant is not None else next(iter(results))
    return {
        point: {metric: float(stats["median"]) for metric, stats in metrics.items()}
        for point, metrics in results[name].items()
    }


def compare(
    base: dict[str, dict[str, float]], new: dict[str, dict[str, float]], *, tails: bool = False
) -> list[Change]:
    """Every comparable metric present in both, in point then metric order."""
    changes = []
    for point in sorted(base.keys() & new.keys()):
        for metric in sorted(base[point].keys() & new[point].keys()):
            higher = direction(metric)
            if higher is None:
                continue
            gated = point not in UNGATED_POINTS and (tails or not metric.endswith(TAILS))
            changes.append(
                Change(point, metric, base[point][metric], new[point][metric], higher, gated)
            )
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--threshold", type=float, default=0.15)
    parser.add_argument("--variant", default=None, help="variant name in both files")
    parser.add_argument("--new-variant", default=None, help="variant name in NEW")
    parser.add_argument("--tails", action="store_true", help="also gate p99.9 and max latency")
    args = parser.parse_args(argv)
    base = medians(json.loads(args.baseline.read_text()), args.variant)
    new = medians(json.loads(args.new.read_text()), args.new_variant or args.variant)
    changes = compare(base, new, tails=args.tails)
    regressions = [c for c in changes if c.gated and c.regressed(args.threshold)]
    for change in changes:
        flag = "REGRESSED" if change in regressions else ("" if change.gated else "(not gated)")
        print(
            f"{change.point:32} {change.metric:34} {change.base:>14,.3f} -> "
            f"{change.new:>14,.3f} ({change.ratio - 1:+7.1%}) {flag}"
        )
    missing = sorted(base.keys() - new.keys())
    if missing:
        print(f"points missing from {args.new}: {', '.join(missing)}")
    print(
        f"{len(regressions)} regression(s) beyond {args.threshold:.0%} "
        f"in {sum(c.gated for c in changes)} gated metrics"
    )
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
