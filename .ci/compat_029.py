"""CI step: run lnc-client 0.2.9's own test suite against this package.

The suite is downloaded from PyPI at run time into a temporary directory (`pip download
lnc-client==0.2.9 --no-binary :all:`: the source distribution, which holds `tests/`); none of
its code enters the repository. Its tests run with this checkout's virtualenv, so they import
our `lnc_client`. The tests we fail on purpose (0.2.9 was wrong on the wire) are listed in the
table of docs/migration.md between the `compat-029-expected` markers: a failure not in that
table, or a listed test that passes, fails this step.

Usage: `.venv/bin/python .ci/compat_029.py` (from `.ci/run`, after the test suite).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION = "0.2.9"
MARKER = re.compile(r"<!-- compat-029-expected:(begin|end) -->")
ROW = re.compile(r"^\|\s*`(tests/[^`]+)`\s*\|")


def expected_failures() -> set[str]:
    """The node ids listed between the markers of docs/migration.md."""
    text = (ROOT / "docs" / "migration.md").read_text(encoding="utf-8")
    parts = MARKER.split(text)
    if len(parts) != 5:
        sys.exit("docs/migration.md: need one compat-029-expected:begin ... :end block")
    return {m.group(1) for line in parts[2].splitlines() if (m := ROW.match(line))}


def download(into: Path) -> Path:
    """Download and unpack the 0.2.9 sdist; return the directory holding its `tests/`."""
    subprocess.run(  # noqa: S603  (a fixed command line)
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--no-binary", ":all:", "-d", str(into), f"lnc-client=={VERSION}",
        ],
        check=True,
    )  # fmt: skip
    (archive,) = into.glob("lnc_client-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / f"lnc_client-{VERSION}"


def outcomes(report: Path) -> dict[str, str]:
    """Node id -> passed / failed / skipped, from pytest's JUnit XML report."""
    results: dict[str, str] = {}
    tree = ET.parse(report)  # noqa: S314  (the report our own pytest run just wrote)
    for case in tree.getroot().iter("testcase"):
        module = case.get("classname", "").split(".")
        path, classes = "/".join(module[:2]) + ".py", module[2:]
        node = "::".join([path, *classes, case.get("name", "")])
        kinds = {child.tag for child in case}
        state = "failed" if kinds & {"failure", "error"} else "passed"
        results[node] = "skipped" if "skipped" in kinds else state
    return results


def main() -> int:
    """Run the suite and compare its failures with the documented list."""
    expected = expected_failures()
    with tempfile.TemporaryDirectory(prefix="lnc-compat-029-") as tmp:
        sdist = download(Path(tmp))
        (sdist / "pytest.ini").write_text(
            "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        )
        report = Path(tmp) / "report.xml"
        # Its output is shown only when the check fails: its closing line ("2 failed, ...")
        # lists the expected failures and would read as the project's own result.
        run = subprocess.run(  # noqa: S603  (a fixed command line)
            [
                sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "--junitxml", str(report), "-o", "junit_family=xunit1", "tests",
            ],
            cwd=sdist, check=False, timeout=600, capture_output=True, text=True,
        )  # fmt: skip
        results = outcomes(report) if report.exists() else {}
    failed = {node for node, state in results.items() if state == "failed"}
    counts = Counter(results.values())
    print(f"lnc-client {VERSION} suite against this package: {dict(sorted(counts.items()))}")
    unexpected, fixed = failed - expected, expected - failed
    for node in sorted(unexpected):
        print(f"UNEXPECTED FAILURE: {node}")
    for node in sorted(fixed):
        state = results.get(node, "not collected")
        print(f"EXPECTED TO FAIL BUT {state.upper()}: {node} (update docs/migration.md)")
    if not results or unexpected or fixed:
        print(run.stdout + run.stderr)
        return 1
    print(f"OK: exactly the {len(expected)} failures documented in docs/migration.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
