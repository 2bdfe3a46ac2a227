"""Assignment strategies: the Rust client's examples, and properties of every strategy."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lnc_client.groups.assignment import AssignmentStrategy, assign

W3 = ["w1", "w2", "w3"]


def test_round_robin_matches_the_rust_example() -> None:
    result = assign(AssignmentStrategy.ROUND_ROBIN, [1, 2, 3, 4, 5, 6], W3)
    assert result == {"w1": (1, 4), "w2": (2, 5), "w3": (3, 6)}


def test_range_gives_contiguous_runs_the_first_workers_one_more() -> None:
    result = assign(AssignmentStrategy.RANGE, [1, 2, 3, 4, 5, 6, 7], W3)
    assert result == {"w1": (1, 2, 3), "w2": (4, 5), "w3": (6, 7)}


def test_sticky_keeps_previous_assignments() -> None:
    previous = {"w1": [1, 2], "w2": [3, 4]}
    result = assign(AssignmentStrategy.STICKY, [1, 2, 3, 4], ["w1", "w2"], previous)
    assert result == {"w1": (1, 2), "w2": (3, 4)}


def test_sticky_gives_a_joining_worker_its_share_moving_only_what_it_needs() -> None:
    previous = {"w1": [1, 2, 3], "w2": [4, 5, 6]}
    result = assign(AssignmentStrategy.STICKY, [1, 2, 3, 4, 5, 6], [*W3], previous)
    assert result == {"w1": (1, 2), "w2": (4, 5), "w3": (3, 6)}


def test_sticky_moves_only_a_dead_workers_topics() -> None:
    previous = {"w1": [1, 4], "w2": [2, 5], "w3": [3, 6]}
    result = assign(AssignmentStrategy.STICKY, [1, 2, 3, 4, 5, 6], ["w1", "w2"], previous)
    assert result == {"w1": (1, 4, 3), "w2": (2, 5, 6)}


def test_no_workers_no_assignment() -> None:
    for strategy in AssignmentStrategy:
        assert assign(strategy, [1, 2], []) == {}


@given(
    st.sampled_from(list(AssignmentStrategy)),
    st.lists(st.integers(1, 1000), unique=True, max_size=40),
    st.lists(st.text("abcdef", min_size=1, max_size=3), min_size=1, max_size=8, unique=True),
    st.dictionaries(st.text("abcdef", min_size=1, max_size=3), st.lists(st.integers(1, 1000))),
)
def test_every_topic_goes_to_exactly_one_worker_balanced(
    strategy: AssignmentStrategy,
    topics: list[int],
    workers: list[str],
    previous: dict[str, list[int]],
) -> None:
    result = assign(strategy, topics, workers, previous)
    assert set(result) == set(workers)
    flat = [t for assigned in result.values() for t in assigned]
    assert sorted(flat) == sorted(topics)
    sizes = [len(v) for v in result.values()]
    limit = -(-len(topics) // len(workers))
    assert max(sizes) <= limit
    if strategy is not AssignmentStrategy.STICKY:
        assert max(sizes) - min(sizes) <= 1
