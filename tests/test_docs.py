"""The documentation is checked against the code and against itself.

* docs/configuration.md lists every field of every config dataclass of the package, each with
  its real default (the Default cell is evaluated and compared with a fresh instance's value).
* Every relative link in README.md and docs/ points to a file that exists, and to a heading
  that exists when it names one (`file.md#heading`).
* The docs are self-contained: they cite no file a user does not have (the team's notes, the
  server's source tree), only the package, the repository and the public web.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import lnc_client

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")])
CONFIG_DOC = ROOT / "docs" / "configuration.md"
REQUIRED = {"group_id": "group", "worker_id": "worker", "data_dir": Path("data")}
"""Values for the fields a config cannot be built without (documented as `required`)."""


def config_classes() -> dict[str, type]:
    """Every public dataclass of the package named `...Config` or `...Options`."""
    found: dict[str, type] = {}
    for module_info in pkgutil.walk_packages(lnc_client.__path__, "lnc_client."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and dataclasses.is_dataclass(value)
                and not name.startswith("_")
                and name.endswith(("Config", "Options"))
            ):
                found[name] = value
    return found


def documented_tables() -> dict[str, list[tuple[str, str]]]:
    """Class name -> [(field, default cell)] from the tables under each `` `Class` `` heading."""
    tables: dict[str, list[tuple[str, str]]] = {}
    current: str | None = None
    for line in CONFIG_DOC.read_text().splitlines():
        heading = re.fullmatch(r"#{2,4} `(\w+)`", line)
        if heading:
            current = heading.group(1)
            tables[current] = []
        elif line.startswith("#"):
            current = None
        elif current and (row := re.match(r"\| `(\w+)` \| `([^`]*)` \|", line)):
            tables[current].append((row.group(1), row.group(2)))
    return tables


CLASSES = config_classes()
TABLES = documented_tables()


def test_every_config_class_is_documented() -> None:
    assert len(CLASSES) >= 10
    assert sorted(CLASSES) == sorted(TABLES)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_fields_and_defaults_match_the_code(name: str) -> None:
    cls = CLASSES[name]
    rows = dict(TABLES[name])
    fields = [field.name for field in dataclasses.fields(cls)]
    assert [field for field, _ in TABLES[name]] == fields
    required = {field: REQUIRED[field] for field in fields if rows[field] == "required"}
    instance = cls(**required)
    namespace = {value.__name__: value for value in CLASSES.values()}
    namespace |= {
        type(getattr(instance, field)).__name__: type(getattr(instance, field))
        for field in fields
        if isinstance(getattr(instance, field), enum.Enum)
    }
    for field in fields:
        if field in required:
            continue
        documented = eval(rows[field], namespace)
        assert documented == getattr(instance, field), f"{name}.{field}"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.MULTILINE)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.DOTALL)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto: ...
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists() or (
            anchor and linked.suffix == ".md" and anchor not in anchors(linked)
        ):
            broken.append(target)
    assert broken == []


NOT_FOR_USERS = re.compile(
    r"/work/|PROTOCOL\.md|CLIENT-SURVEY|ARCHITECTURE\.md|lance-build|\b\w+/[\w/]+\.rs\b|\bD\d{1,2}\b"
)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_cite_nothing_a_user_does_not_have(doc: Path) -> None:
    lines = doc.read_text().splitlines()
    assert [f"{n}: {line}" for n, line in enumerate(lines, 1) if NOT_FOR_USERS.search(line)] == []


def test_license_file_matches_pyproject_and_version_is_one() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Apache-2.0"}
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text
    assert "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text  # the full text, not a stub
    assert project["version"] == lnc_client.__version__
    assert f"## {lnc_client.__version__}" in (ROOT / "CHANGELOG.md").read_text()


def test_every_logger_is_named_after_its_module_and_documented() -> None:
    import logging

    documented = set(re.findall(r"^\| `(lnc_client[\w.]*)` \|", OBSERVABILITY.read_text(), re.M))
    found = set()
    for module_info in pkgutil.walk_packages(lnc_client.__path__, "lnc_client."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if isinstance(value, logging.Logger):
                expected = ALIASED_LOGGERS.get(module.__name__, module.__name__)
                assert value.name == expected, module.__name__
                found.add(value.name)
    assert found == documented


OBSERVABILITY = ROOT / "docs" / "observability.md"
ALIASED_LOGGERS = {"lnc_client._lwp_connection": "lnc_client.connection"}
"""The 0.2.9 connection logs under the name of the module that exports it."""


@pytest.mark.parametrize(
    "name", ["ProducerMetrics", "ConsumerMetrics", "ClientMetrics", "ServerMetrics"]
)
def test_every_metrics_field_is_documented(name: str) -> None:
    from lnc_client.metrics import ClientMetrics, ConsumerMetrics
    from lnc_client.producer import ProducerMetrics
    from lnc_client.server.metrics import ServerMetrics

    cls = {c.__name__: c for c in (ProducerMetrics, ConsumerMetrics, ClientMetrics, ServerMetrics)}
    section = OBSERVABILITY.read_text().split(f"### `{name}`", 1)[1].split("\n#", 1)[0]
    listed = re.findall(r"^\| `(\w+)` \|", section, re.M)
    assert listed == [field.name for field in dataclasses.fields(cls[name])]
