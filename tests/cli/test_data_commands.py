"""`lnc` fetch, consume, ingest and produce, run in-process against an embedded server."""

from __future__ import annotations

import json
import shlex
import subprocess
import threading
import time
from pathlib import Path

from lnc_client.cli.common import hexdump
from lnc_client.server import FaultConfig, ServerThread

from .conftest import LNC, Lnc, lnc_process


def test_ingest_lines_batches_raw_payloads_like_the_rust_cli(
    lnc: Lnc, tmp_path: Path, server: ServerThread
) -> None:
    lnc("create-topic", "-n", "raw")
    source = tmp_path / "in.txt"
    source.write_bytes(b"a\r\nb\n\nc\nd\ne")
    done = lnc("ingest", "-t", "raw", "-f", source, "--lines", "--batch-size", "2")
    assert "  Records:     5\n  Bytes:       7 bytes\n" in done.out
    window = lnc("fetch", "-t", "raw", "-m", "100")
    assert "Bytes returned: 7\nNext offset: 7\n" in window.out
    assert window.out.endswith("Data (UTF-8 lossy):\na\nbc\nde\n")  # 3 payloads: a\nb, c\nd, e
    seeds = f"127.0.0.1:1,{server.address}"
    whole = lnc("ingest", "-t", "raw", "-s", seeds, stdin=b"\x00\x01binary")
    assert "  Records:     1\n  Bytes:       8 bytes\n" in whole.out
    empty = lnc("ingest", "-t", "raw", "-f", "-")
    assert "  Records:     0\n" in empty.out
    assert lnc("ingest", "-t", "raw", "-f", tmp_path / "missing").code == 1
    assert lnc("ingest", "-t", "raw", "--lines", "--batch-size", "0").code == 1


def test_fetch_hex_and_past_the_end(lnc: Lnc) -> None:
    lnc("create-topic", "-n", "hex")
    data = bytes(range(40))
    lnc("ingest", "-t", "1", stdin=data)
    out = lnc("fetch", "-t", "hex", "-o", "2", "--hex").out
    assert out.endswith("Data (hex):\n" + hexdump(data[2:]) + "\n")
    assert "00000000  02 03 04 05 06 07 08 09  0a 0b 0c 0d 0e 0f 10 11  |................|" in out
    at_end = lnc("fetch", "-t", "hex", "-o", "40")
    assert at_end.out.endswith("No data available at offset 40\n")
    past = lnc("fetch", "-t", "hex", "-o", "41")
    assert past.code == 1
    assert "catching up" in past.err
    assert lnc("fetch", "-t", "nope").code == 1


def test_hexdump_matches_the_rust_layout() -> None:
    assert hexdump(b"a\nb\nc") == ("00000000  61 0a 62 0a 63" + " " * 36 + "|a.b.c|")
    eight = hexdump(b"12345678")
    assert eight == "00000000  31 32 33 34 35 36 37 38" + " " * 27 + "|12345678|"


def test_consume_windows_from_beginning_end_offset_and_max(lnc: Lnc) -> None:
    lnc("create-topic", "-n", "win")
    lnc("ingest", "-t", "win", stdin=b"x" * 70_000)
    full = lnc("consume", "-t", "win")
    assert "--- Fetch 1 (offset: 65536, bytes: 65536, records: 1) ---" in full.out
    assert "--- Fetch 2 (offset: 70000, bytes: 4464, records: 1) ---" in full.out
    assert full.out.endswith(
        "No more data available.\n\nSummary:\n  Total fetches: 2\n  Total bytes: 70000\n"
        "  Total records: 2\n  Final offset: 70000\n"
    )
    one = lnc("consume", "-t", "win", "-m", "1", "-o", "69990")
    assert one.out.startswith("Consuming from topic 1 starting at offset 69990\nMax records: 1\n")
    assert "  Total bytes: 10\n" in one.out
    tail = lnc("consume", "-t", "win", "--from-end")
    assert "starting at end (tail)" in tail.out
    assert tail.out.endswith("  Total fetches: 0\n  Total bytes: 0\n  Total records: 0\n"
                             "  Final offset: 70000\n")  # fmt: skip
    both = lnc("consume", "-t", "win", "--from-beginning", "-o", "5", "-m", "1")
    assert "starting at beginning" in both.out  # --from-beginning wins, as in the Rust CLI
    assert lnc("consume", "-t", "404").code == 1


def test_produce_forms_and_consume_formats(lnc: Lnc, tmp_path: Path) -> None:
    lnc("create-topic", "-n", "recs")
    assert lnc("produce", "-t", "recs", "hello", "wörld").out.startswith("Produced 2 records")
    assert lnc("produce", "-t", "recs", "--json", stdin=b'{"a": 1}\n\n[2, 3]\n').code == 0
    assert lnc("produce", "-t", "recs", "--kv", "--batch-size", "1", stdin=b"k=v=1\n").code == 0
    blob = tmp_path / "blob"
    blob.write_bytes(b"two\nlines\xff")
    assert lnc("produce", "-t", "1", "--raw", "-f", blob).code == 0
    text = lnc("consume", "-t", "recs", "--format", "text")
    assert text.out == 'hello\nwörld\n{"a":1}\n[2,3]\nk=v=1\ntwo\nlines\ufffd\n'
    lines = [
        json.loads(line)
        for line in lnc("consume", "-t", "recs", "--format", "json").out.splitlines()
    ]
    assert lines[0] == {"type": "raw_data", "value": "hello"}
    assert lines[2] == {"type": "json", "value": {"a": 1}}
    assert lines[4] == {"type": "key_value", "key": "k", "value": "v=1"}
    assert lines[5] == {"type": "raw_data", "value_base64": "dHdvCmxpbmVz/w=="}
    hexed = lnc("consume", "-t", "recs", "--format", "hex", "--limit", "1").out
    assert hexed == "01 68656c6c6f\n"
    assert lnc("consume", "-t", "recs", "--limit", "2", "-o", "10").out == 'wörld\n{"a":1}\n'
    assert lnc("consume", "-t", "recs", "--from-end", "--format", "text").out == ""
    lnc("create-topic", "-n", "big")
    lnc("produce", "-t", "big", "a" * 700_000, "b" * 700_000, "--batch-size", "1")
    # One record-mode fetch reads up to 1 MiB: the first record only; -m counts fetches.
    assert lnc("consume", "-t", "big", "--format", "hex", "-m", "1").out.count("\n") == 1
    assert lnc("consume", "-t", "big", "--format", "hex").out.count("\n") == 2
    bad_json = lnc("produce", "-t", "recs", "--json", "not json")
    assert bad_json.code == 1
    assert bad_json.err.startswith("Error: not JSON")
    assert lnc("produce", "-t", "recs", "--kv", "novalue").code == 1
    assert lnc("produce", "-t", "recs", "x", "-f", blob).code == 1


def test_consume_follow_gets_records_produced_later(server: ServerThread, lnc: Lnc) -> None:
    lnc("create-topic", "-n", "live")
    lnc("produce", "-t", "live", "early")

    def later() -> None:
        time.sleep(0.5)
        lnc_process("produce", "-s", server.address, "-t", "live", "late1", "late2")

    producer = threading.Thread(target=later)
    producer.start()
    follow = lnc_process("consume", "-s", server.address, "-t", "live", "--follow", "--limit", "3")
    producer.join()
    assert follow.code == 0, follow.err
    assert follow.out == "early\nlate1\nlate2\n"


def test_consume_windows_follow(server: ServerThread, lnc: Lnc) -> None:
    lnc("create-topic", "-n", "tail")

    def later() -> None:
        time.sleep(0.5)
        lnc_process("ingest", "-s", server.address, "-t", "tail", stdin=b"arrived")

    writer = threading.Thread(target=later)
    writer.start()
    follow = lnc_process("consume", "-s", server.address, "-t", "tail", "-F", "-m", "1")
    writer.join()
    assert follow.code == 0, follow.err
    assert "--- Fetch 1 (offset: 7, bytes: 7, records: 1) ---\narrived\n" in follow.out


def test_a_closed_pipe_ends_quietly(server: ServerThread, lnc: Lnc) -> None:
    lnc("create-topic", "-n", "big")
    lnc("ingest", "-t", "big", stdin=b"y" * 60_000)
    command = f"{shlex.join(LNC)} fetch -s {server.address} -t big --hex | head -c 20"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, timeout=60, check=False
    )
    assert done.stdout == b"Fetching from topic "
    assert done.stderr == b""
    assert done.returncode == 141


def test_ingest_without_an_ack_in_time_fails_in_one_line(tmp_path: Path, lnc: Lnc) -> None:
    slow = FaultConfig(ack_delay_ms=700)
    with ServerThread(tmp_path / "slow", port=0, faults=slow) as server:
        lnc("create-topic", "-s", server.address, "-n", "t")
        late = lnc("ingest", "-s", server.address, "-t", "t", "--timeout", "0.2", stdin=b"x")
    assert late.code == 1
    assert late.err == "Error: no Ack for batch 1 within 0.2 s\n"
