"""docs/architecture.svg is what docs/diagrams.py draws: the committed diagram is never stale."""

from __future__ import annotations

import importlib.util
import sys
import xml.dom.minidom
from pathlib import Path
from types import ModuleType

DOCS = Path(__file__).resolve().parent.parent / "docs"


def diagrams() -> ModuleType:
    spec = importlib.util.spec_from_file_location("diagrams", DOCS / "diagrams.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_committed_svg_is_current() -> None:
    assert (DOCS / "architecture.svg").read_text(encoding="utf-8") == diagrams().render(), (
        "run: python docs/diagrams.py"
    )


def test_the_svg_is_well_formed_and_linked_from_the_docs() -> None:
    xml.dom.minidom.parseString(diagrams().render())
    assert "(architecture.svg)" in (DOCS / "architecture.md").read_text(encoding="utf-8")


def test_the_check_fails_on_a_stale_svg(tmp_path: Path) -> None:
    module = diagrams()
    module.SVG_PATH = tmp_path / "architecture.svg"
    module.SVG_PATH.write_text("<svg/>", encoding="utf-8")
    assert module.main(["--check"]) == 1
    assert module.main([]) == 0
    assert module.main(["--check"]) == 0
