"""Metrics: latency histograms, and the snapshot types of the admin client and the consumer.

Every object that talks to a server counts what it does and returns a frozen snapshot from
`metrics()`: `Producer.metrics()` (`ProducerMetrics`), `StandaloneConsumer.metrics()`
(`ConsumerMetrics`), `LanceClient.metrics()` (`ClientMetrics`) and `LanceServer.metrics()`.
Counting costs one integer add per batch, fetch or request (never per record), and one
`LatencyHistogram.observe` (a bisect over 16 bounds) per acknowledged batch, fetch or request.

`prometheus_text` renders any snapshot in the Prometheus text format (what `lnc serve
--metrics` serves), and `lnc_client.otel` reports snapshots to OpenTelemetry.

Data flow: the owning object updates counters in place on its event loop; `metrics()` copies
them into a frozen dataclass, so a snapshot never changes after it was taken.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

__all__ = [
    "LATENCY_BOUNDS_S",
    "ClientMetrics",
    "ConsumerMetrics",
    "HistogramSnapshot",
    "LatencyHistogram",
    "RequestStats",
    "prometheus_text",
]

LATENCY_BOUNDS_S: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds (seconds) of the latency buckets; a last bucket takes everything above."""


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """A latency histogram at one moment.

    Attributes:
        bounds: Upper bounds of the buckets, in seconds (the last bucket, +Inf, is implied).
        counts: Observations per bucket (`len(bounds) + 1` buckets, not cumulative).
        count: Observations in all.
        sum: Sum of the observations, in seconds.
    """

    bounds: tuple[float, ...] = LATENCY_BOUNDS_S
    counts: tuple[int, ...] = (0,) * (len(LATENCY_BOUNDS_S) + 1)
    count: int = 0
    sum: float = 0.0

    @property
    def mean(self) -> float:
        """The mean in seconds (0 without observations)."""
        return self.sum / self.count if self.count else 0.0

    def percentile(self, fraction: float) -> float:
        """Estimate a percentile (`0.99` for p99) in seconds: the upper bound of its bucket.

        Returns:
            The bound of the bucket holding the percentile (`inf` when it is in the last
            bucket), or 0 without observations.
        """
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be in 0..1")
        if not self.count:
            return 0.0
        rank, seen = max(1, math.ceil(fraction * self.count)), 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            seen += count
            if seen >= rank:
                return bound
        return math.inf


class LatencyHistogram:
    """A fixed-bucket latency histogram (seconds); `observe` is cheap, `snapshot` copies."""

    __slots__ = ("_count", "_counts", "_sum")

    def __init__(self) -> None:
        self._counts = [0] * (len(LATENCY_BOUNDS_S) + 1)
        self._count = 0
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        """Count one observation."""
        self._counts[bisect.bisect_left(LATENCY_BOUNDS_S, seconds)] += 1
        self._count += 1
        self._sum += seconds

    def snapshot(self) -> HistogramSnapshot:
        """The histogram now, frozen."""
        return HistogramSnapshot(LATENCY_BOUNDS_S, tuple(self._counts), self._count, self._sum)


class RequestStats:
    """Counters of the requests a connection manager runs (`ConnectionManager.stats`).

    Attributes:
        requests: Requests run (each counted once, however often it was retried).
        errors: Requests that ended in an error.
        retries: Tries after the first (after a retryable error or a lost connection).
        latency: Time from the start of each request to its answer or error.
    """

    __slots__ = ("errors", "latency", "requests", "retries")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.retries = 0
        self.latency = LatencyHistogram()


@dataclass(frozen=True, slots=True)
class ClientMetrics:
    """A snapshot of a `LanceClient`'s counters (`LanceClient.metrics()`).

    Attributes:
        requests: Requests made (a call that looks a topic name up makes two).
        errors: Calls that raised a `LanceError`.
        retries: Requests tried again after a retryable error or a lost connection.
        reconnects: Times the connection was re-established.
        request_latency: Time from the start of each call to its answer or error.
    """

    requests: int
    errors: int
    retries: int
    reconnects: int
    request_latency: HistogramSnapshot


@dataclass(frozen=True, slots=True)
class ConsumerMetrics:
    """A snapshot of a `StandaloneConsumer`'s counters (`StandaloneConsumer.metrics()`).

    Attributes:
        records_received: Records delivered by `poll()` (envelopes opened).
        bytes_received: Stored bytes delivered (compressed envelopes counted as stored).
        batches_received: Non-empty `PollResult`s delivered.
        fetches: Fetch requests answered with a window (empty ones included).
        empty_fetches: Fetches that found nothing new.
        catching_up_replies: CatchingUp answers (the offset was past the server's end).
        retries: Fetches tried again after a retryable error or a lost connection.
        reconnects: Times the connection was re-established.
        errors: Polls that raised a `LanceError` (after the retries they do themselves).
        commits: Offsets committed to the store.
        current_offset: The byte offset of the next record to deliver.
        committed_offset: The last committed offset, or None.
        high_water_mark: The topic's end offset as last seen from the server.
        lag: `high_water_mark - current_offset`, in bytes (0 when past the end).
        fetch_latency: Time from sending each Fetch to its answer.
    """

    records_received: int
    bytes_received: int
    batches_received: int
    fetches: int
    empty_fetches: int
    catching_up_replies: int
    retries: int
    reconnects: int
    errors: int
    commits: int
    current_offset: int
    committed_offset: int | None
    high_water_mark: int
    lag: int
    fetch_latency: HistogramSnapshot


def _samples(snapshot: object) -> Iterator[tuple[str, int | float | HistogramSnapshot]]:
    if not dataclasses.is_dataclass(snapshot) or isinstance(snapshot, type):
        raise TypeError(f"not a metrics snapshot: {snapshot!r}")
    for field in dataclasses.fields(snapshot):
        value = getattr(snapshot, field.name)
        if isinstance(value, HistogramSnapshot | bool | int | float):
            yield field.name, value


def prometheus_text(snapshot: object, prefix: str, labels: dict[str, str] | None = None) -> str:
    """Render a metrics snapshot in the Prometheus text exposition format (0.0.4).

    Integer and float fields become gauges named `<prefix>_<field>` (None fields are left
    out); `HistogramSnapshot` fields become histograms (`_bucket{le=...}`, `_sum`, `_count`)
    in seconds, named `<prefix>_<field>_seconds`.

    Args:
        snapshot: A frozen metrics dataclass (`ProducerMetrics`, `ConsumerMetrics`, ...).
        prefix: The metric name prefix, e.g. `lnc_producer`.
        labels: Labels added to every sample.
    """
    base = ",".join(f'{key}="{_escape(value)}"' for key, value in sorted((labels or {}).items()))
    lines: list[str] = []
    for name, value in _samples(snapshot):
        metric = f"{prefix}_{name}"
        if not isinstance(value, HistogramSnapshot):
            lines += [f"# TYPE {metric} gauge", f"{metric}{_braces(base)} {_number(value)}"]
            continue
        metric += "_seconds"
        lines.append(f"# TYPE {metric} histogram")
        cumulative = 0
        for bound, count in zip((*value.bounds, math.inf), value.counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == math.inf else repr(bound)
            labels_text = f'{base},le="{le}"' if base else f'le="{le}"'
            lines.append(f"{metric}_bucket{{{labels_text}}} {cumulative}")
        lines.append(f"{metric}_sum{_braces(base)} {_number(value.sum)}")
        lines.append(f"{metric}_count{_braces(base)} {value.count}")
    return "\n".join(lines) + "\n"


def _braces(labels: str) -> str:
    return f"{{{labels}}}" if labels else ""


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
