"""Every module of lnc_client imports where `fcntl`, `os.fdatasync` and `os.pread` are missing.

That is the situation on Windows (no `fcntl`, no `fdatasync`, no `pread`) and macOS (no
`fdatasync`). The durable-file helpers' fallbacks are tested in tests/test_fs.py; this checks
that no other module needs those names when it is imported.
"""

from __future__ import annotations

from .helpers import run_python

IMPORT_EVERYTHING = """
import importlib, os, pkgutil, sys
sys.modules["fcntl"] = None
del os.fdatasync, os.pread
import lnc_client
modules = pkgutil.walk_packages(lnc_client.__path__, "lnc_client.")
names = [m.name for m in modules if not m.name.endswith(".__main__")]  # those run a command
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_every_module_imports_without_posix_only_functions() -> None:
    result = run_python(IMPORT_EVERYTHING)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 40  # every module was visited, not an empty walk
