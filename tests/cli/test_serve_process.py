"""`lnc serve --port 0` as a subprocess, used by other `lnc` processes; Ctrl-C ends a follow."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from .conftest import LNC, lnc_process


def test_serve_subprocess_and_follow_interrupted_by_ctrl_c(tmp_path: Path) -> None:
    serve_argv = [*LNC, "serve", "--data-dir", str(tmp_path / "data"), "--port", "0"]
    with subprocess.Popen(serve_argv, stdout=subprocess.PIPE, text=True) as serve:
        try:
            assert serve.stdout is not None
            address = serve.stdout.readline().strip().removeprefix("listening on ")
            env = {"LNC_SERVER": address}
            assert lnc_process("create-topic", "-n", "live", env=env).code == 0
            follow_argv = [*LNC, "consume", "-s", address, "-t", "live", "-F", "--format", "json"]
            with subprocess.Popen(
                follow_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            ) as follow:
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
