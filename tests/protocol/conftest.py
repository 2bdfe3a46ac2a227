"""Shared fixtures for the protocol tests: the byte vectors of PROTOCOL.md.

The vectors are loaded from tests/data/vectors.json (a verbatim copy of the shared
/work/shared/lwp/vectors.json), so a clone of the repository tests on its own and no hex is
ever retyped in a test. A test that takes a `vector_name` argument runs once per positive frame
vector.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS_PATH = Path(__file__).resolve().parent.parent / "data" / "vectors.json"
_VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that asks for `vector_name` over the positive frame vectors."""
    if "vector_name" in metafunc.fixturenames:
        metafunc.parametrize("vector_name", [v["name"] for v in _VECTORS["frames"]])


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    """The whole vectors.json document."""
    return _VECTORS


@pytest.fixture(scope="session")
def frame_vectors() -> dict[str, bytes]:
    """Every positive frame vector's bytes, by name."""
    return {v["name"]: bytes.fromhex(v["hex"]) for v in _VECTORS["frames"]}


@pytest.fixture(scope="session")
def negative_vectors() -> dict[str, bytes]:
    """Every negative frame vector's bytes, by name."""
    return {v["name"]: bytes.fromhex(v["hex"]) for v in _VECTORS["negative"]}
