"""`lnc serve --port 0` as a subprocess, used by other `lnc` processes; Ctrl-C ends a follow.

The follow process is started as an interactive shell would start it, with SIGINT not ignored:
a suite run as a background job (`pytest &` from a script, some CI runners) has SIGINT ignored,
children inherit that, and a child that ignores Ctrl-C cannot show that Ctrl-C ends it.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .conftest import LNC, lnc_process


@contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """Children started inside get SIGINT's default action even if this process ignores it."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_serve_subprocess_and_follow_interrupted_by_ctrl_c(tmp_path: Path) -> None:
    serve_argv = [*LNC, "serve", "--data-dir", str(tmp_path / "data"), "--port", "0"]
    with subprocess.Popen(serve_argv, stdout=subprocess.PIPE, text=True) as serve:
        try:
            assert serve.stdout is not None
            address = serve.stdout.readline().strip().removeprefix("listening on ")
            env = {"LNC_SERVER": address}
            assert lnc_process("create-topic", "-n", "live", env=env).code == 0
            follow_argv = [*LNC, "consume", "-s", address, "-t", "live", "-F", "--format", "json"]
            with _sigint_not_ignored():
                follow = subprocess.Popen(
                    follow_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            with follow:
                try:
                    assert lnc_process("produce", "-t", "live", "--kv", "k=v", env=env).code == 0
                    assert follow.stdout is not None
                    line = follow.stdout.readline()
                    assert line == '{"type": "key_value", "key": "k", "value": "v"}\n'
                    follow.send_signal(signal.SIGINT)
                    assert follow.wait(timeout=30) == 130
                    assert follow.stderr is not None
                    assert follow.stderr.read() == "Interrupted.\n"
                finally:
                    if follow.poll() is None:
                        follow.kill()
        finally:
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(timeout=30) == 0
