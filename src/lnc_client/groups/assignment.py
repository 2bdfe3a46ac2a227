"""Assignment strategies: which worker of a group consumes which topic.

Pure functions from (topics, workers[, previous assignment]) to an assignment. The topic order is
the group's configured order; workers are taken in sorted order so that every coordinator (and
every test) computes the same result. The Rust coordinator iterates a `HashMap`, so its worker
order is arbitrary: the same strategies, but not necessarily the same worker for each topic.

* `ROUND_ROBIN`: topic i goes to worker i mod n.
* `RANGE`: contiguous runs of topics; the first `len(topics) % n` workers get one more.
* `STICKY`: keep each worker's previous topics, at most ceil(topics / workers) of them, then give
  every other topic to the worker with the fewest (ties: the smallest id). The Rust `Sticky`
  keeps *all* previous topics, so a worker that joins a fully assigned group gets nothing until
  someone leaves; the cap here lets a new worker take its share while moving as few topics as
  possible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

__all__ = ["AssignmentStrategy", "assign"]


class AssignmentStrategy(StrEnum):
    """How a coordinator spreads topics over workers (the Rust `AssignmentStrategy`)."""

    ROUND_ROBIN = "round_robin"
    RANGE = "range"
    STICKY = "sticky"


def assign(
    strategy: AssignmentStrategy,
    topics: Sequence[int],
    workers: Sequence[str],
    previous: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, tuple[int, ...]]:
    """Return every worker's topics (each topic exactly once; no workers: an empty dict).

    Args:
        strategy: The strategy.
        topics: The group's topics, in order.
        workers: The live workers.
        previous: The current assignment (used by `STICKY` only).
    """
    names = sorted(set(workers))
    if not names:
        return {}
    if strategy is AssignmentStrategy.ROUND_ROBIN:
        return {name: tuple(topics[i :: len(names)]) for i, name in enumerate(names)}
    if strategy is AssignmentStrategy.RANGE:
        share, extra = divmod(len(topics), len(names))
        result: dict[str, tuple[int, ...]] = {}
        start = 0
        for i, name in enumerate(names):
            count = share + (1 if i < extra else 0)
            result[name] = tuple(topics[start : start + count])
            start += count
        return result
    return _sticky(topics, names, previous or {})


def _sticky(
    topics: Sequence[int], names: list[str], previous: Mapping[str, Sequence[int]]
) -> dict[str, tuple[int, ...]]:
    cap = -(-len(topics) // len(names))
    wanted = set(topics)
    kept: dict[str, list[int]] = {name: [] for name in names}
    taken: set[int] = set()
    for name in names:
        for topic in previous.get(name, ()):
            if topic in wanted and topic not in taken and len(kept[name]) < cap:
                kept[name].append(topic)
                taken.add(topic)
    for topic in topics:
        if topic not in taken:
            target = min(names, key=lambda name: (len(kept[name]), name))
            kept[target].append(topic)
            taken.add(topic)
    return {name: tuple(kept[name]) for name in names}
