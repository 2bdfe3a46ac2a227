"""Suite-wide switch between the two servers (docs/real-lance.md).

With LNC_TEST_LANCE_BIN set, tests marked `ours_only(reason)` skip with that reason (they need
`lnc serve`'s fault switches, files or options); without it, tests marked `real_lance` skip
because there is no real server to run. Nothing else changes: the default suite is the same.
The `pytester` plugin is loaded for testing our own pytest plugin. A real `lance` a test started
and left running (a test that timed out runs none of its own cleanup) is stopped after it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .real_lance import NEEDS_LANCE, STARTED, lance_bin

pytest_plugins = ["pytester"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    real = lance_bin() is not None
    for item in items:
        if real and (marker := item.get_closest_marker("ours_only")) is not None:
            reason = marker.args[0] if marker.args else "needs lnc serve"
            item.add_marker(pytest.mark.skip(reason=f"ours only: {reason}"))
        elif not real and item.get_closest_marker("real_lance") is not None:
            item.add_marker(pytest.mark.skip(reason=NEEDS_LANCE))


@pytest.fixture(autouse=True)
def _stop_real_nodes_left_running() -> Iterator[None]:
    """Stop the real nodes started during the test and still running after its teardown.

    Nodes of module-scoped fixtures were started before this fixture (higher scopes set up
    first) and are left to their own teardown.
    """
    first = len(STARTED)
    yield
    for node in STARTED[first:]:
        if node.running:
            node.stop(kill=True)
    del STARTED[first:]
