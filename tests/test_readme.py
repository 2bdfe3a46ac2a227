"""The README runs as written: its two opening commands, and its quick start (address changed)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from lnc_client.server import ServerThread

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_exactly_two_commands() -> None:
    lines = README.read_text().splitlines()
    assert lines[0] == "```sh"
    assert lines[3] == "```"
    assert "lnc demo" in lines[1]
    assert "pytest" in lines[2]


def test_readme_quick_start_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "README has no python block"
    with ServerThread(tmp_path, port=0) as server:
        code = blocks[0].replace("127.0.0.1:1992", server.address)
        code = code.replace("port=1992", f"port={server.port}")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert out.getvalue().splitlines()[0] == "1 b'{\"price\": 6942.25}'"
