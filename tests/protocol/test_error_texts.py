"""The table of ErrorResponse texts: every row reads back as its own class and side."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lnc_client import errors
from lnc_client.protocol import error_texts as texts

SERVER_DIR = Path(errors.__file__).parent / "server"

_FIELD_VALUES = {
    "name": st.text(min_size=1, max_size=20),
    "topic_id": st.integers(min_value=0, max_value=2**32 - 1),
    "leader_addr": st.from_regex(r"[a-z0-9.\[\]:]{1,20}", fullmatch=True),
    "reason": st.text(max_size=30),
    "what": st.text(max_size=30),
    "detail": st.text(max_size=30),
}


def _fields(row: texts.ServerText) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(row.template) if name]


@pytest.mark.parametrize("row", texts.SERVER_TEXTS, ids=lambda row: row.template[:40])
@given(data=st.data())
def test_every_row_reads_back_as_its_class_and_side(
    row: texts.ServerText, data: st.DataObject
) -> None:
    fields = {name: data.draw(_FIELD_VALUES[name], label=name) for name in _fields(row)}
    text = row.format(**fields)
    error = errors.error_from_server_text(text)
    assert type(error) is row.error
    assert error.server_text == text
    assert texts.side_of(text) is row.side
    for name, attribute in (("name", "name"), ("topic_id", "topic_id")):
        if name in fields:
            assert getattr(error, attribute) == fields[name]
    if "leader_addr" in fields:
        assert error.leader_addr == fields["leader_addr"]  # type: ignore[attr-defined]


def test_exact_rows_are_distinct_and_without_fields() -> None:
    exact = [row.template for row in texts.SERVER_TEXTS if row.pattern is None]
    assert len(exact) == len(set(exact))
    assert all(not _fields(row) for row in texts.SERVER_TEXTS if row.pattern is None)


def test_unknown_texts_are_server_errors_for_the_control_side() -> None:
    assert type(texts.error_for_text("something new")) is errors.ServerError
    assert texts.side_of("something new") is texts.Side.CONTROL


@pytest.mark.parametrize("path", sorted(SERVER_DIR.rglob("*.py")), ids=lambda p: p.name)
def test_the_server_writes_no_literal_error_text(path: Path) -> None:
    """`error_frame(...)` always gets its text from the table, never a literal or f-string."""
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "error_frame"
        ):
            assert not isinstance(node.args[0], ast.Constant | ast.JoinedStr), (
                f"{path.name}:{node.lineno} writes a literal error text"
            )
