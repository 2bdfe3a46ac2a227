"""Lance's own Rust tools against `lnc serve` (needs LNC_TEST_LANCE_BIN; slow ones need -m slow).

The tools are looked up next to the `lance` binary (`lnc-chaos`, `lnc-bench`, `lnc`), or taken from
LNC_TEST_LNC_CHAOS / LNC_TEST_LNC_BENCH / LNC_TEST_LNC_CLI. `lnc serve` runs as a child process
(this venv's `lnc` script) on 127.0.0.1 and a free port, so it can be SIGKILLed and restarted on
the same port and data directory while a tool keeps its endpoint:

    LNC_TEST_LANCE_BIN=/path/to/lance .venv/bin/pytest -m slow tests/real/test_lance_tools.py

The chaos run lasts LNC_TEST_CHAOS_SECS seconds (default 330): `lnc serve` is SIGKILLed at 20 %,
45 % and 70 % of it and restarted a second later; lnc-chaos must report 0 gaps, 0 duplicates and
0 out-of-order records.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..real_lance import lance_bin

pytestmark = pytest.mark.real_lance
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def tool(name: str, env: str) -> Path:
    given = os.environ.get(env)
    binary = lance_bin()
    path = Path(given) if given else (binary.parent / name if binary else Path(name))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"{name} not found: set {env}=/path/to/{name}")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LncServe:
    """`lnc serve` as a child process on a fixed port, killable and restartable by PID."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / "lnc-serve.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        script = Path(sys.executable).parent / "lnc"
        command = [str(script), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--data-dir", str(self.data_dir)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                assert self.process.poll() is None, self.log.read_text()
                time.sleep(0.05)
        raise AssertionError("lnc serve did not listen within 20 s")

    def kill(self) -> int:
        """SIGKILL the server; return the exit status (-9 when the signal killed it)."""
        process, self.process = self.process, None
        assert process is not None
        assert process.poll() is None, "lnc serve had already exited"
        process.send_signal(signal.SIGKILL)
        return process.wait(10)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@pytest.fixture
def lnc_serve(tmp_path: Path) -> Iterator[LncServe]:
    server = LncServe(tmp_path / "data", free_port())
    server.start()
    yield server
    server.stop()


def run_tool(command: list[str], timeout: float) -> str:
    done = subprocess.run(
        command,
        capture_output=True,
        timeout=timeout,
        check=False,
        env=dict(os.environ, RUST_LOG="info", NO_COLOR="1"),
    )
    output = ANSI.sub("", (done.stdout + done.stderr).decode(errors="replace"))
    assert done.returncode == 0, output[-4000:]
    return output


CHAOS_SECS = int(os.environ.get("LNC_TEST_CHAOS_SECS", "330"))
"""How long lnc-chaos runs (its 3 kills at 20%, 45% and 70% of it)."""


@pytest.mark.slow
@pytest.mark.timeout(CHAOS_SECS + 240)  # the tool's own run, its 180 s bound, the restarts
def test_lnc_chaos_through_three_sigkills_of_lnc_serve(lnc_serve: LncServe) -> None:
    chaos = tool("lnc-chaos", "LNC_TEST_LNC_CHAOS")
    duration = CHAOS_SECS
    stop = threading.Event()
    kills: list[tuple[int, int, int]] = []

    def killer() -> None:
        started = time.monotonic()
        for share in (0.2, 0.45, 0.7):
            if stop.wait(max(0.0, started + duration * share - time.monotonic())):
                return
            pid = lnc_serve.process.pid if lnc_serve.process else 0
            kills.append((round(time.monotonic() - started), pid, lnc_serve.kill()))
            time.sleep(1.0)
            lnc_serve.start()

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        output = run_tool(
            [
                str(chaos),
                f"--endpoint={lnc_serve.address}",
                f"--duration={duration}",
                "--report-interval=30",
                "--rate=6000",
            ],
            timeout=duration + 180,
        )
    finally:
        stop.set()
        thread.join()
    assert [status for _, _, status in kills] == [-signal.SIGKILL] * 3, kills
    assert len({pid for _, pid, _ in kills}) == 3
    final = re.findall(r"gaps: (\d+)\s+\|\s+duplicates: (\d+)\s+\|\s+out-of-order: (\d+)", output)
    assert final, output[-4000:]
    assert final[-1] == ("0", "0", "0"), output[-4000:]
    assert "OVERALL: PASS" in output, output[-4000:]
    consumed = re.findall(r"consumed=(\d+)", output)
    assert consumed, output[-4000:]
    assert int(consumed[-1]) > duration * 50, output[-4000:]
    print(f"kills (s, pid, status): {kills}")
    print(output[-3000:])


def test_the_rust_cli_remote_commands_against_lnc_serve(
    lnc_serve: LncServe, tmp_path: Path
) -> None:
    cli = tool("lnc", "LNC_TEST_LNC_CLI")
    server = ["-s", lnc_serve.address]

    def lnc(*args: str) -> str:
        return run_tool([str(cli), args[0], *server, *args[1:]], timeout=30)

    assert "ID: 1" in lnc("create-topic", "-n", "events", "--max-age-secs", "0", "--max-bytes", "0")
    assert re.search(r"^1\s+events\s", lnc("list-topics"), re.MULTILINE)
    assert "Name:       events" in lnc("get-topic", "-t", "1")
    lines = tmp_path / "lines.txt"
    lines.write_text("one\ntwo\nthree\n")
    assert "Records:     3" in lnc("ingest", "-t", "1", "-f", str(lines), "--lines")
    fetched = lnc("fetch", "-t", "1")
    assert "Bytes returned: 13" in fetched
    assert "one\ntwo\nthree" in fetched
    assert "Total bytes: 13" in lnc("consume", "-t", "1", "--from-beginning", "-m", "2")
    assert "Retention policy set for topic 1" in lnc(
        "set-retention", "-t", "1", "--max-age-secs", "3600", "--max-bytes", "100000"
    )
    assert "Is Leader:      yes" in lnc("cluster-status")
    assert "Topic 1 deleted successfully." in lnc("delete-topic", "-t", "1", "--force")
    assert "No topics found" in lnc("list-topics")


@pytest.mark.slow
@pytest.mark.timeout(240)  # the tool's own 180 s bound, and a margin
def test_lnc_bench_runs_to_completion_against_lnc_serve(lnc_serve: LncServe) -> None:
    bench = tool("lnc-bench", "LNC_TEST_LNC_BENCH")
    output = run_tool(
        [str(bench), f"--endpoint={lnc_serve.address}", "--duration=20", "--warmup=2"],
        timeout=180,
    )
    print(output[-2500:])
    assert re.search(r"Errors:\s+0\s", output), output[-4000:]
    assert re.search(r"OVERALL:\s+PASS", output), output[-4000:]
