"""`lnc demo` end to end (small), and the `lnc` parser."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lnc_client.cli import build_parser, main


def test_demo_produces_consumes_and_verifies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--records", "3000", "--latency-samples", "20"]) == 0
    out = capsys.readouterr().out
    assert "produced 3,000 records of 100 B" in out
    assert "consumed 3,000 records" in out
    assert "every one verified, in order" in out
    assert "single send latency over 20 sends" in out
    assert out.rstrip().endswith("lnc demo: OK")


def test_demo_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--record-size", "4"]) == 2
    assert "--record-size >= 12" in capsys.readouterr().err


def test_parser_has_serve_and_demo() -> None:
    parser = build_parser()
    assert parser.parse_args(["demo"]).records == 1_000_000
    args = parser.parse_args(["serve", "--data-dir", "d", "--port", "0"])
    assert args.command == "serve"
    assert args.port == 0


def test_lnc_module_entry_point_prints_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lnc_client.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.startswith("lnc-client ")
