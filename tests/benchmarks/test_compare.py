"""benchmarks/compare.py: directions, thresholds, gating and the exit status."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

COMPARE = Path(__file__).resolve().parents[2] / "benchmarks" / "compare.py"


@pytest.fixture(scope="module")
def compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_compare", COMPARE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def report(points: dict[str, dict[str, float]], variant: str = "current") -> dict[str, object]:
    return {
        "results": {
            variant: {
                point: {metric: {"median": value} for metric, value in metrics.items()}
                for point, metrics in points.items()
            }
        }
    }


def write(tmp_path: Path, name: str, points: dict[str, dict[str, float]]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(report(points)))
    return path


@pytest.mark.parametrize(
    ("metric", "higher"),
    [
        ("records_per_s", True),
        ("payload_mb_s", True),
        ("ack_p99_ms", False),
        ("client_cpu_us_per_record", False),
        ("idle_consumer_cpu_pct", False),
        ("peak_rss_mib", False),
        ("server_cpu_us_per_record", False),
        ("process_cpu_pct", False),  # at a fixed offered rate: a cost
        ("server_cpu_pct", None),  # grows with throughput: not a cost
        ("records_per_batch", None),
    ],
)
def test_direction_is_read_from_the_metric_name(
    compare: ModuleType, metric: str, higher: bool | None
) -> None:
    assert compare.direction(metric) is higher


@pytest.mark.parametrize(
    ("higher", "base", "new", "regressed"),
    [
        (True, 100.0, 86.0, False),  # -14%
        (True, 100.0, 84.0, True),  # -16%
        (True, 100.0, 300.0, False),
        (False, 10.0, 11.4, False),  # +14% latency
        (False, 10.0, 11.6, True),  # +16% latency
        (False, 10.0, 1.0, False),
    ],
)
def test_a_change_regresses_only_beyond_the_threshold_in_its_direction(
    compare: ModuleType, higher: bool, base: float, new: float, regressed: bool
) -> None:
    change = compare.Change("p", "m", base, new, higher, True)
    assert change.regressed(0.15) is regressed


def test_tails_and_the_disk_probe_are_reported_but_not_gated(compare: ModuleType) -> None:
    base = {"disk": {"ceiling_mb_s": 500.0}, "x": {"ack_p999_ms": 1.0, "ack_p50_ms": 1.0}}
    new = {"disk": {"ceiling_mb_s": 100.0}, "x": {"ack_p999_ms": 9.0, "ack_p50_ms": 1.0}}
    gated = {(c.point, c.metric): c.gated for c in compare.compare(base, new)}
    assert gated == {
        ("disk", "ceiling_mb_s"): False,
        ("x", "ack_p50_ms"): True,
        ("x", "ack_p999_ms"): False,
    }
    assert all(c.gated for c in compare.compare(base, new, tails=True) if c.point == "x")


def test_only_metrics_present_in_both_are_compared(compare: ModuleType) -> None:
    base = {"a": {"records_per_s": 1.0, "ack_p50_ms": 1.0}, "gone": {"records_per_s": 1.0}}
    new = {"a": {"records_per_s": 1.0}, "added": {"records_per_s": 1.0}}
    assert [(c.point, c.metric) for c in compare.compare(base, new)] == [("a", "records_per_s")]


def test_exit_status_is_1_on_a_regression_and_0_otherwise(
    compare: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write(tmp_path, "base.json", {"p": {"records_per_s": 1000.0, "ack_p50_ms": 2.0}})
    same = write(tmp_path, "same.json", {"p": {"records_per_s": 900.0, "ack_p50_ms": 2.2}})
    slower = write(tmp_path, "slow.json", {"p": {"records_per_s": 800.0, "ack_p50_ms": 2.0}})
    assert compare.main([str(base), str(same)]) == 0
    assert compare.main([str(base), str(slower)]) == 1
    assert "REGRESSED" in capsys.readouterr().out
    assert compare.main([str(base), str(slower), "--threshold", "0.25"]) == 0


def test_two_variants_of_one_file_are_compared(compare: ModuleType, tmp_path: Path) -> None:
    both = {
        "results": {
            "main": {"p": {"records_per_s": {"median": 1000.0}}},
            "new": {"p": {"records_per_s": {"median": 700.0}}},
        }
    }
    path = tmp_path / "ab.json"
    path.write_text(json.dumps(both))
    assert compare.main([str(path), str(path), "--variant", "main", "--new-variant", "new"]) == 1
    assert compare.main([str(path), str(path), "--variant", "new", "--new-variant", "main"]) == 0


def test_the_committed_baseline_is_readable(compare: ModuleType) -> None:
    baseline = COMPARE.parent / "baseline.json"
    values = compare.medians(json.loads(baseline.read_text()), None)
    assert values["produce_batch_100B"]["records_per_s"] > 0
    assert compare.compare(values, values)
    assert not [c for c in compare.compare(values, values) if c.regressed(0.15)]
