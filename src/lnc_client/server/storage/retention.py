"""Retention: delete closed segments by age, then by total size (writer thread).

The real rules (PROTOCOL.md §7): only topics whose metadata has `retention` set; phase 1 deletes
closed segments whose end time is more than `max_age_secs` ago; phase 2 deletes the oldest
closed segments until the topic's total (active segment included) is at most `max_bytes`.
The active segment is never deleted, and 0 is a real limit, not "unlimited". Deleting the
oldest segments shifts every offset down, exactly as on the real server.
"""

from __future__ import annotations

from collections.abc import Sequence

from lnc_client.protocol.control import RetentionInfo
from lnc_client.server.storage.segments import SegmentView, TopicLog

__all__ = ["apply_retention", "segments_to_delete"]

_NS: int = 1_000_000_000


def segments_to_delete(
    closed: Sequence[SegmentView], total: int, retention: RetentionInfo, now_ns: int
) -> list[SegmentView]:
    """Pick the closed segments retention removes (pure; `closed` oldest first).

    Args:
        closed: The topic's closed segments in offset order.
        total: Bytes in all the topic's segments, the active one included.
        retention: The topic's limits.
        now_ns: The current wall-clock time in nanoseconds.
    """
    cutoff = now_ns - retention.max_age_secs * _NS
    doomed = [s for s in closed if s.end_ns is not None and s.end_ns < cutoff]
    remaining = total - sum(s.size for s in doomed)
    gone = {id(s) for s in doomed}
    for segment in closed:
        if remaining <= retention.max_bytes:
            break
        if id(segment) not in gone:
            doomed.append(segment)
            remaining -= segment.size
    return doomed


def apply_retention(targets: Sequence[tuple[TopicLog, RetentionInfo]], now_ns: int) -> int:
    """Apply retention to each (log, limits) pair; returns the number of segments deleted.

    Runs on the writer thread, which owns the logs.
    """
    deleted = 0
    for log, retention in targets:
        doomed = segments_to_delete(log.closed_segments, log.snapshot.total, retention, now_ns)
        log.drop_closed(doomed)
        deleted += len(doomed)
    return deleted
