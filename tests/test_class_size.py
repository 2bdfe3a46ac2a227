"""Size limits from the engineering standards: no class in src over 400 lines, and the
asyncio `Connection` under 300 (its pairing rules live in `protocol/exchange.py`)."""

from __future__ import annotations

import ast
from pathlib import Path

import lnc_client

PACKAGE_DIR = Path(lnc_client.__file__).parent
LIMITS = {"lnc_client/connection.py:Connection": 300}
DEFAULT_LIMIT = 400


def class_sizes(path: Path) -> dict[str, int]:
    """`file:Class` -> lines, for every class defined in `path` (nested ones too)."""
    name = f"lnc_client/{path.relative_to(PACKAGE_DIR).as_posix()}"
    return {
        f"{name}:{node.name}": (node.end_lineno or node.lineno) - node.lineno + 1
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
    }


def test_classes_stay_under_their_limits() -> None:
    sizes: dict[str, int] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        sizes.update(class_sizes(path))
    assert "lnc_client/connection.py:Connection" in sizes
    too_long = {
        name: lines for name, lines in sizes.items() if lines >= LIMITS.get(name, DEFAULT_LIMIT)
    }
    assert too_long == {}
