"""The layers, checked on the source: imports go downward only (docs/architecture.md).

Every `import` in `src/lnc_client` is read with `ast` (module-level and inside functions, with
relative imports resolved) and checked against the rules:

* `protocol/` is sans-I/O: it imports only the non-I/O standard modules listed here, the LZ4
  codec, its own modules and `lnc_client.errors`, and calls no I/O builtin (`open`, `print`,
  `input`).
* `errors` is the floor: at module level it imports nothing of ours (its one deferred import
  reads the error table of `protocol/`).
* `server/` imports only `protocol/`, the shared modules and itself: never a client module.
* Client modules (everything else but `cli/` and `testing/`, which sit on top of both) never
  import the server.

The checker itself is tested on small bad sources below, so each rule is shown to fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lnc_client

PACKAGE_DIR = Path(lnc_client.__file__).parent
ROOT = "lnc_client"

PURE_STDLIB = frozenset(
    {
        "__future__",
        "abc",
        "binascii",
        "bisect",
        "collections",
        "dataclasses",
        "enum",
        "functools",
        "heapq",
        "itertools",
        "json",
        "math",
        "operator",
        "re",
        "string",
        "struct",
        "types",
        "typing",
        "zlib",
    }
)
"""Standard modules with no I/O that `protocol/` may use."""
PURE_THIRD_PARTY = frozenset({"lz4"})
"""`lz4.block`: compression of bytes in memory."""
IO_BUILTINS = frozenset({"open", "print", "input", "breakpoint"})
SHARED = frozenset({f"{ROOT}.errors", f"{ROOT}.tlv", f"{ROOT}._fs", f"{ROOT}.metrics"})
"""Modules below both the client and the server. A new one is added here on purpose."""
TOP = ("cli", "testing")
"""Packages on top of both the client and the server (the command line, the pytest plugin)."""


def module_name(path: Path) -> str:
    """`.../lnc_client/server/app.py` -> `lnc_client.server.app` (packages: their name)."""
    parts = [ROOT, *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(module: str, source: str, *, is_package: bool = False) -> list[tuple[str, bool]]:
    """Every module `source` imports, absolute, and whether it is imported when loaded.

    Imports inside a function or under `if TYPE_CHECKING:` are not run at load time (False).
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, at_load: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name, at_load) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
                # `from . import x` / `from .pkg import x`: x may be a module.
                found.extend((f"{base}.{alias.name}", at_load) for alias in node.names)
            found.append((base, at_load))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            at_load = False
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, at_load)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, at_load)

    visit(ast.parse(source), True)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _ours(name: str) -> bool:
    return name == ROOT or name.startswith(ROOT + ".")


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(module: str, source: str, *, is_package: bool = False) -> list[str]:
    """What in `source` (the text of `module`) breaks a layering rule; empty when none."""
    found: list[str] = []
    for name, at_load in imports_of(module, source, is_package=is_package):
        if _within(module, f"{ROOT}.protocol"):
            top = name.split(".")[0]
            allowed = (
                _within(name, f"{ROOT}.protocol")
                or name == f"{ROOT}.errors"
                or top in PURE_STDLIB
                or top in PURE_THIRD_PARTY
            )
            if not allowed:
                found.append(f"{module}: protocol imports {name}")
        elif module == f"{ROOT}.errors":
            if at_load and _ours(name):
                found.append(f"{module}: the floor imports {name} at module level")
        elif module in SHARED:
            if _ours(name) and not (_within(name, f"{ROOT}.protocol") or name in SHARED):
                found.append(f"{module}: a shared module imports {name}")
        elif _within(module, f"{ROOT}.server"):
            if _ours(name) and not (
                _within(name, f"{ROOT}.server")
                or _within(name, f"{ROOT}.protocol")
                or name in SHARED
            ):
                found.append(f"{module}: the server imports client module {name}")
        elif not any(_within(module, f"{ROOT}.{top}") for top in TOP) and _within(
            name, f"{ROOT}.server"
        ):
            found.append(f"{module}: client module imports the server ({name})")
    if _within(module, f"{ROOT}.protocol"):
        for node in ast.walk(ast.parse(source)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in IO_BUILTINS
            ):
                found.append(f"{module}: protocol calls {node.func.id}() (line {node.lineno})")
    return found


SOURCES = sorted(PACKAGE_DIR.rglob("*.py"))


def test_the_package_is_found() -> None:
    names = {module_name(path) for path in SOURCES}
    assert {f"{ROOT}.protocol.frame", f"{ROOT}.server.app", f"{ROOT}.connection"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_imports_go_downward_only(path: Path) -> None:
    module = module_name(path)
    assert violations(module, path.read_text(), is_package=path.name == "__init__.py") == []


# --- the checker fails where it should -------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("lnc_client.protocol.frame", "import socket\n"),
        ("lnc_client.protocol.frame", "import asyncio\n"),
        ("lnc_client.protocol.frame", "def f() -> None:\n    import time\n"),
        ("lnc_client.protocol.frame", "from os import path\n"),
        ("lnc_client.protocol.frame", "from lnc_client.connection import Connection\n"),
        ("lnc_client.protocol.frame", "from ..config import Address\n"),
        ("lnc_client.protocol.frame", "data = open('x').read()\n"),
        ("lnc_client.errors", "from lnc_client.protocol.frame import Frame\n"),
        (
            "lnc_client.errors",
            "try:\n    import lnc_client.protocol\nexcept ImportError:\n    pass\n",
        ),
        ("lnc_client.server.app", "from lnc_client.producer import Producer\n"),
        ("lnc_client.server.storage.topics", "from ...config import ClientConfig\n"),
        ("lnc_client.server.app", "import lnc_client.connection\n"),
        ("lnc_client.producer", "from lnc_client.server import LanceServer\n"),
        ("lnc_client.consumer", "from .server.app import LanceServer\n"),
        ("lnc_client.admin", "def f() -> None:\n    import lnc_client.server.app\n"),
        ("lnc_client.tlv", "from lnc_client.connection import Connection\n"),
    ],
)
def test_the_checker_finds_each_broken_rule(module: str, source: str) -> None:
    assert violations(module, source) != []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("lnc_client.protocol.frame", "import struct\nfrom lnc_client.errors import X\n"),
        ("lnc_client.protocol.frame", "from .records import decode_stream\n"),
        ("lnc_client.errors", "def f() -> None:\n    from lnc_client.protocol import x\n"),
        ("lnc_client.errors", "if TYPE_CHECKING:\n    from lnc_client.protocol import Frame\n"),
        ("lnc_client.server.app", "from lnc_client.protocol.frame import Frame\n"),
        ("lnc_client.server.storage.topics", "from ..config import ServerConfig\n"),
        ("lnc_client.cli.demo", "from lnc_client.server import ServerThread\n"),
        ("lnc_client.producer", "from lnc_client.connection import Connection\n"),
    ],
)
def test_the_checker_lets_downward_imports_pass(module: str, source: str) -> None:
    assert violations(module, source) == []
