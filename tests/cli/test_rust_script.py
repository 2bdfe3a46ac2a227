"""A script written for Lance's Rust `lnc` runs unchanged against ours, with the same results.

The script uses the Rust CLI's commands and flags only. It runs through subprocesses (bash, then
`python -m lnc_client.cli` for every command) against a fresh embedded server; its output, once
times, durations and the server address are masked, must be exactly the text below, which is
what the Rust binary printed against `lnc serve`. With `LNC_TEST_RUST_CLI=/path/to/lnc` the
Rust binary runs the same script against another fresh server and the two outputs must match,
and each binary must read what the other wrote. With `LNC_TEST_LANCE_BIN=/path/to/lance` our
CLI also runs the script against the real Lance server, with the same output.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from lnc_client.server import ServerThread

from ..real_lance import RealNode, lance_bin
from .conftest import LNC

SCRIPT_TIMEOUT_S = 120
"""Bound on one run of the script (about 15 interpreter starts; seconds on a loaded machine)."""

pytestmark = [
    pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash"),
    # above SCRIPT_TIMEOUT_S: a slow run fails with the script's own output, not pytest's timeout
    pytest.mark.timeout(SCRIPT_TIMEOUT_S + 30),
]

SCRIPT = r"""
set -e
$LNC create-topic -s "$SERVER" -n orders
$LNC create-topic -s "$SERVER" -n audit --max-age-secs 3600 --max-bytes 1048576
$LNC list-topics -s "$SERVER"
printf 'first\nsecond\n\nthird\n' | $LNC ingest -s "$SERVER" -t 1 --lines --batch-size 2
printf 'raw bytes' > "$WORK/blob.bin"
$LNC ingest -s "$SERVER" -t 1 -f "$WORK/blob.bin"
$LNC consume -s "$SERVER" -t 1
$LNC consume -s "$SERVER" -t 1 --from-beginning -m 1 --hex
$LNC fetch -s "$SERVER" -t 1 -o 6 -m 5
$LNC get-topic -s "$SERVER" -t 1
$LNC set-retention -s "$SERVER" -t 1 --max-age-secs 60 --max-bytes 0
$LNC delete-topic -s "$SERVER" -t 2 --force
$LNC cluster-status -s "$SERVER"
$LNC list-topics -s "$SERVER"
if $LNC get-topic -s "$SERVER" -t 2 2>/dev/null; then exit 9; fi
echo "all done"
"""

EXPECTED = """\
Topic created successfully:
  ID: 1
  Name: orders
Topic created successfully:
  ID: 2
  Name: audit
  Max age: 3600 seconds
  Max bytes: 1.00 MB
Topics on SERVER:
ID       NAME                             CREATED                   MAX AGE    MAX BYTES
----------------------------------------------------------------------------------------
1        orders                           TIME             -            -
2        audit                            TIME             -            -
Ingest complete:
  Topic:       1
  Records:     3
  Bytes:       17 bytes
  Duration:    D
  Throughput:  T
Ingest complete:
  Topic:       1
  Records:     1
  Bytes:       9 bytes
  Duration:    D
  Throughput:  T
Consuming from topic 1 starting at beginning

--- Fetch 1 (offset: 26, bytes: 26, records: 1) ---
first
secondthirdraw bytes

No more data available.

Summary:
  Total fetches: 1
  Total bytes: 26
  Total records: 1
  Final offset: 26
Consuming from topic 1 starting at beginning
Max records: 1

--- Fetch 1 (offset: 26, bytes: 26, records: 1) ---
00000000  66 69 72 73 74 0a 73 65  63 6f 6e 64 74 68 69 72  |first.secondthir|
00000010  64 72 61 77 20 62 79 74  65 73                    |draw bytes|


Summary:
  Total fetches: 1
  Total bytes: 26
  Total records: 1
  Final offset: 26
Fetching from topic 1 at offset 6
Max bytes: 5

Bytes returned: 5
Next offset: 11
Record count: 1
End of stream: false

Data (UTF-8 lossy):
secon
Topic Details:
  ID:         1
  Name:       orders
  Created:    TIME UTC
  Retention:  not configured
Retention policy set for topic 1
  Max age: 60 seconds
  Max bytes: unlimited
Topic 2 deleted successfully.
Cluster Status:
  Node ID:        0
  Is Leader:      yes
  Leader ID:      0
  Current Term:   0
  Node Count:     1
  Healthy Nodes:  1
  Quorum:         available
Topics on SERVER:
ID       NAME                             CREATED                   MAX AGE    MAX BYTES
----------------------------------------------------------------------------------------
1        orders                           TIME             -            -
all done
"""


def _mask(text: str, server: str) -> str:
    text = text.replace(server, "SERVER")
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "TIME", text)
    text = re.sub(r"Duration:    \S+", "Duration:    D", text)
    return re.sub(r"Throughput:  .*", "Throughput:  T", text)


def _run(lnc: str, server: str, work: Path) -> str:
    done = subprocess.run(
        ["bash", "-c", SCRIPT],
        env={**os.environ, "LNC": lnc, "SERVER": server, "WORK": str(work)},
        capture_output=True,
        timeout=SCRIPT_TIMEOUT_S,
        check=False,
    )
    output = done.stdout.decode()
    assert done.returncode == 0, f"stderr:\n{done.stderr.decode()}\nstdout:\n{output}"
    return _mask(output, server)


def run_script(lnc: str, tmp_path: Path, name: str) -> str:
    """Run SCRIPT with `lnc` as the command against a fresh server; return masked stdout."""
    work = tmp_path / name
    work.mkdir()
    with ServerThread(work / "data", port=0) as server:
        return _run(lnc, server.address, work)


def test_rust_cli_script_runs_unchanged_against_ours(tmp_path: Path) -> None:
    output = run_script(shlex.join(LNC), tmp_path, "ours")
    assert output == EXPECTED, f"full output:\n{output}"


@pytest.mark.real_lance
def test_the_script_gives_the_same_output_against_the_real_server(tmp_path: Path) -> None:
    binary = lance_bin()
    assert binary is not None
    node = RealNode(binary, tmp_path / "lance").start()
    try:
        assert _run(shlex.join(LNC), node.address, tmp_path) == EXPECTED
    finally:
        node.stop()


RUST_CLI = os.environ.get("LNC_TEST_RUST_CLI")
needs_rust = pytest.mark.skipif(
    not RUST_CLI or not Path(RUST_CLI).is_file(),
    reason="set LNC_TEST_RUST_CLI to the Rust lnc binary to compare with it",
)


@needs_rust
def test_rust_binary_gives_the_same_output(tmp_path: Path) -> None:
    assert RUST_CLI is not None
    assert run_script(shlex.quote(RUST_CLI), tmp_path, "rust") == EXPECTED


@needs_rust
def test_each_binary_reads_what_the_other_wrote(tmp_path: Path) -> None:
    assert RUST_CLI is not None
    ours, rust = shlex.join(LNC), shlex.quote(RUST_CLI)
    script = r"""
set -e
$A create-topic -s "$SERVER" -n mixed > /dev/null
printf 'one\ntwo\n' | $A ingest -s "$SERVER" -t 1 --lines > /dev/null
$B consume -s "$SERVER" -t 1
$B fetch -s "$SERVER" -t 1 --hex
"""
    outputs = []
    for writer, reader in ((ours, rust), (rust, ours)):
        with ServerThread(tmp_path / f"d{len(outputs)}", port=0) as server:
            done = subprocess.run(
                ["bash", "-c", script],
                env={**os.environ, "A": writer, "B": reader, "SERVER": server.address},
                capture_output=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr.decode()
            outputs.append(_mask(done.stdout.decode(), server.address))
    assert outputs[0] == outputs[1]
    assert "one\ntwo" in outputs[0]
