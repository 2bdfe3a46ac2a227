"""The `lnc` parser (every Rust CLI command and flag, --help everywhere), bench and progress."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

import pytest

from lnc_client.cli import build_parser
from lnc_client.cli.common import Progress

from .conftest import Lnc

RUST_COMMANDS = {
    "scan": [],
    "repair": [],
    "rebuild-index": [],
    "inspect-index": [],
    "find-recovery": [],
    "dump": ["-l", "--limit"],
    "clean": ["--dry-run"],
    "topics": [],
    "fetch": ["-s", "--server", "-t", "--topic", "-o", "--offset", "-m", "--max-bytes", "--hex"],
    "consume": ["-s", "--server", "-t", "--topic", "--from-beginning", "--from-end", "-o",
                "--offset", "-m", "--max-records", "--hex"],
    "set-retention": ["-s", "--server", "-t", "--topic", "--max-age-secs", "--max-bytes"],
    "create-topic": ["-s", "--server", "-n", "--name", "--max-age-secs", "--max-bytes"],
    "list-topics": ["-s", "--server"],
    "get-topic": ["-s", "--server", "-t", "--topic"],
    "delete-topic": ["-s", "--server", "-t", "--topic", "--force"],
    "cluster-status": ["-s", "--server"],
    "ingest": ["-s", "--server", "-t", "--topic", "-f", "--file", "--lines", "--batch-size"],
    "verify-data": ["-p", "--path", "-t", "--topic", "--fail-fast"],
    "export-topic": ["-p", "--path", "-t", "--topic", "-o", "--output", "--with-metadata"],
    "import-topic": ["-p", "--path", "-n", "--name", "-i", "--input"],
}  # fmt: skip


def _subcommands() -> dict[str, object]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    assert isinstance(action.choices, dict)
    return action.choices


def test_every_rust_command_and_flag_is_accepted() -> None:
    commands = _subcommands()
    for name, flags in RUST_COMMANDS.items():
        options = commands[name]._option_string_actions  # type: ignore[attr-defined]  # argparse internals: no public list of a parser's flags
        missing = [flag for flag in flags if flag not in options]
        assert not missing, f"{name} lacks {missing}"


def test_rust_defaults() -> None:
    parser = build_parser()
    fetch = parser.parse_args(["fetch", "-t", "3"])
    assert (fetch.topic, fetch.offset, fetch.max_bytes, fetch.hex) == (3, 0, 65536, False)
    assert parser.parse_args(["ingest", "-t", "orders"]).batch_size == 100
    assert parser.parse_args(["ingest", "-t", "orders"]).topic == "orders"
    assert parser.parse_args(["dump", "seg"]).limit == 10
    assert parser.parse_args(["list-topics"]).server is None  # then $LNC_SERVER, 127.0.0.1:1992


def test_default_server_is_127_0_0_1_1992(monkeypatch: pytest.MonkeyPatch) -> None:
    from lnc_client.cli.common import endpoint

    monkeypatch.delenv("LNC_SERVER", raising=False)
    args = build_parser().parse_args(["list-topics"])
    assert str(endpoint(args).address) == "127.0.0.1:1992"
    monkeypatch.setenv("LNC_SERVER", "10.1.2.3:7")
    assert str(endpoint(args).address) == "10.1.2.3:7"


def test_help_on_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _subcommands()
    assert set(RUST_COMMANDS) | {"produce", "ping", "bench", "serve", "demo"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([name, "--help"])
        assert done.value.code == 0
        assert f"usage: lnc {name}" in capsys.readouterr().out


def test_usage_errors_are_one_line(lnc: Lnc) -> None:
    for argv in (["nope"], ["fetch"], ["fetch", "-t", ""], ["consume", "-t", "1", "-o", "x"]):
        result = lnc(*argv)
        assert result.code == 2
        assert result.err.count("\n") == 1
        assert "(see lnc" in result.err


def test_bench_json_and_text(lnc: Lnc) -> None:
    result = lnc("bench", "-n", "3000", "--latency-samples", "20", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["records"] == 3000
    assert report["produce"]["records_per_s"] > 0
    assert report["consume"]["mb_per_s"] > 0
    assert report["latency_ms"]["samples"] == 20
    assert (
        0
        < report["latency_ms"]["p50"]
        <= report["latency_ms"]["p99"]
        <= report["latency_ms"]["max"]
    )
    assert json.loads(lnc("list-topics", "--json").out) == []  # the temporary topic is gone
    text = lnc("bench", "-n", "1000", "--latency-samples", "0", "--keep").out
    assert "records/s" in text
    assert "latency" not in text
    (kept,) = json.loads(lnc("list-topics", "--json").out)
    busy = lnc("bench", "-t", kept["name"], "-n", "10")
    assert busy.code == 1
    assert "not empty" in busy.err
    assert lnc("bench", "--record-size", "4").code == 1


def test_progress_bar_draws_on_a_stream_and_is_silent_otherwise() -> None:
    stream = io.StringIO()
    bar = Progress("produce", 200, stream=stream, force=True)
    bar.update(100)
    bar.update(200)
    bar.finish()
    drawn = stream.getvalue()
    assert "\rproduce  [" in drawn
    assert " 100.0% 200/200 " in drawn
    assert drawn.endswith("\n")
    quiet = io.StringIO()
    silent = Progress("x", 10, stream=quiet)
    silent.update(10)
    silent.finish()
    assert quiet.getvalue() == ""


def test_readme_command_line_block_runs(lnc: Lnc) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("## Command line", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0] for line in block.splitlines() if line.startswith("lnc ")]
    assert len(commands) == 4
    for command in commands:
        argv = shlex.split(command)[1:]
        argv = [arg for arg in argv if arg != "--follow"]  # it would wait for Ctrl-C
        if argv[0] == "bench":  # smaller, to keep the suite fast
            argv = [
                *["1000" if arg == "100000" else arg for arg in argv],
                "--latency-samples",
                "20",
            ]
        result = lnc(*argv)
        assert result.code == 0, (command, result.err)
    assert lnc("consume", "-t", "orders", "--format", "json").out == (
        '{"type": "json", "value": {"id": 1}}\n'
    )


def test_an_unexpected_error_is_one_line_unless_debugging(
    lnc: Lnc, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("lnc_client.admin.LanceClient.list_topics", broken)
    result = lnc("list-topics")
    assert result.code == 1
    assert result.err == (
        "Error: unexpected RuntimeError: boom second line (set LNC_DEBUG=1 for a traceback)\n"
    )
    monkeypatch.setenv("LNC_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        lnc("list-topics")
