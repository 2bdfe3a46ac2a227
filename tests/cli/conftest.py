"""Fixtures for the `lnc` command-line tests.

`server` is a fresh embedded server (ServerThread, ephemeral port, temporary directory).
`lnc` runs the command line in-process (`main(argv)`), with stdin given as bytes, and returns
exit status, stdout and stderr; `lnc_process` runs it as a real subprocess
(`python -m lnc_client.cli`), for the representative end-to-end tests.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lnc_client.cli import main
from lnc_client.server import ServerThread

LNC = [sys.executable, "-m", "lnc_client.cli"]


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


Lnc = Callable[..., Result]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(tmp_path / "data", port=0) as thread:
        yield thread


@pytest.fixture
def lnc(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, server: ServerThread
) -> Lnc:
    """Run `lnc ARGS` in-process against `server` (via $LNC_SERVER unless -s is given)."""
    monkeypatch.setenv("LNC_SERVER", server.address)
    monkeypatch.delenv("LNC_TOKEN", raising=False)

    def run(*args: str | Path, stdin: bytes = b"") -> Result:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        capsys.readouterr()
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as done:
            code = int(done.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def lnc_process(*args: str | Path, stdin: bytes = b"", env: dict[str, str] | None = None) -> Result:
    """Run `python -m lnc_client.cli ARGS` as a subprocess."""
    done = subprocess.run(
        [*LNC, *map(str, args)],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())
