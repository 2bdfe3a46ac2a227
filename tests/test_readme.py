"""The README runs as written: its two opening commands and every quick start (address changed).

The Python quick starts run in order against one embedded server (the producer's records are
what the consumers print); the fragment that needs a producer and a consumer in scope is
compiled only; the pytest example runs in an inner pytest session (`pytester`).
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

import pytest

from lnc_client.server import ServerThread

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_opens_with_exactly_two_commands() -> None:
    lines = README.read_text().splitlines()
    assert lines[0] == "```sh"
    assert lines[3] == "```"
    assert "lnc demo" in lines[1]
    assert "pytest" in lines[2]


def test_readme_quick_starts_run(tmp_path: Path) -> None:
    runnable = [b for b in BLOCKS if "asyncio.run(" in b or "lnc_client.sync" in b]
    assert len(runnable) == 4, "produce, consume, administer, blocking"
    out = io.StringIO()
    with ServerThread(tmp_path, port=0) as server:
        for block in runnable:
            code = block.replace("127.0.0.1:1992", server.address)
            with contextlib.redirect_stdout(out):
                exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    lines = out.getvalue().splitlines()
    assert lines == [
        "1 b'{\"price\": 6942.25}'",
        "1 b'fire and forget'",
        "['my-events']",
        "b'{\"price\": 6942.25}'",
    ]


def test_readme_fragments_compile() -> None:
    fragments = [b for b in BLOCKS if "asyncio.run(" not in b and "def test_" not in b]
    fragments = [b for b in fragments if "lnc_client.sync" not in b]
    assert fragments
    for fragment in fragments:
        ast.parse(fragment)  # top-level await parses; names are checked by the import line
        imports = [line for line in fragment.splitlines() if line.startswith(("from ", "import "))]
        exec("\n".join(imports), {})


def test_readme_pytest_example_passes(pytester: pytest.Pytester) -> None:
    (example,) = [b for b in BLOCKS if "def test_" in b]
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_example=example)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
