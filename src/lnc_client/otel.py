"""OpenTelemetry: report `metrics()` snapshots as OpenTelemetry instruments (the `otel` extra).

`instrument(producer, "lnc.producer")` registers one observable instrument per field of the
object's snapshot, read from a fresh `metrics()` each time the OpenTelemetry SDK collects:
cumulative counts (records, bytes, batches, retries, ...) as observable counters, levels
(offsets, lag, open connections, buffered bytes, ...) as observable gauges, and each latency
histogram as four gauges: `.count`, `.sum`, `.p50` and `.p99` (seconds). Works for
`Producer`, `StandaloneConsumer`, `LanceClient` and `LanceServer` alike (anything with a
`metrics()` that returns a frozen dataclass). Needs `pip install 'lnc-client[otel]'`; without
an SDK configured, OpenTelemetry's API does nothing, as usual.

Callbacks run in the thread the SDK collects in; `metrics()` only copies counters, so reading
it from there is safe for the asyncio objects as well as for `lnc_client.sync`'s.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Final, Protocol

from lnc_client.metrics import HistogramSnapshot

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, Observation

__all__ = ["Measured", "instrument"]

LEVELS: Final = frozenset(
    {
        "buffered_bytes",
        "queued_batches",
        "in_flight_batches",
        "current_offset",
        "committed_offset",
        "high_water_mark",
        "lag",
        "connections_open",
        "topics",
        "uptime_s",
    }
)
"""Fields that go up and down (reported as gauges); every other number is a running count."""

_PERCENTILES: Final = (("p50", 0.5), ("p99", 0.99))
_SNAPSHOT_S: Final = 0.5
"""How long one `metrics()` snapshot serves the instruments (one collection reads them all)."""


class Measured(Protocol):
    """Anything with a `metrics()` snapshot (a frozen dataclass of numbers and histograms)."""

    def metrics(self) -> object:
        """Return the current snapshot."""
        ...


def instrument(
    source: Measured,
    prefix: str,
    *,
    meter: Meter | None = None,
    attributes: Mapping[str, str] | None = None,
) -> list[str]:
    """Register observable instruments for every field of `source.metrics()`.

    Args:
        source: The producer, consumer, client or server.
        prefix: Instrument name prefix, e.g. `lnc.producer`.
        meter: The meter to use (default: `opentelemetry.metrics.get_meter("lnc_client")`).
        attributes: Attributes attached to every observation (e.g. `{"topic": "orders"}`).

    Returns:
        The names of the instruments created.

    Raises:
        ImportError: opentelemetry-api is not installed.
    """
    if meter is None:
        try:
            api = importlib.import_module("opentelemetry.metrics")
        except ImportError:
            raise ImportError(
                "opentelemetry-api is not installed: pip install 'lnc-client[otel]'"
            ) from None
        meter = api.get_meter("lnc_client")
    assert meter is not None
    labels = dict(attributes or {})
    names: list[str] = []
    snapshot = source.metrics()
    latest = _Latest(source)  # one snapshot serves every instrument of one collection
    if not dataclasses.is_dataclass(snapshot) or isinstance(snapshot, type):
        raise TypeError(f"{source!r}.metrics() is not a metrics snapshot")
    for field in dataclasses.fields(snapshot):
        value = getattr(snapshot, field.name)
        if isinstance(value, HistogramSnapshot):
            for suffix, read in _histogram_readers(field.name):
                name = f"{prefix}.{field.name}.{suffix}"
                meter.create_observable_gauge(name, [_callback(latest, read, labels)], unit="s")
                names.append(name)
            continue
        if not isinstance(value, int | float) and value is not None:
            continue
        name = f"{prefix}.{field.name}"
        read = _field_reader(field.name)
        if field.name in LEVELS:
            meter.create_observable_gauge(name, [_callback(latest, read, labels)])
        else:
            meter.create_observable_counter(name, [_callback(latest, read, labels)])
        names.append(name)
    return names


Reader = Callable[[object], float | None]


def _field_reader(name: str) -> Reader:
    def read(snapshot: object) -> float | None:
        value = getattr(snapshot, name)
        return None if value is None else float(value)

    return read


def _histogram_readers(name: str) -> list[tuple[str, Reader]]:
    def histogram(snapshot: object) -> HistogramSnapshot:
        value = getattr(snapshot, name)
        assert isinstance(value, HistogramSnapshot)
        return value

    readers: list[tuple[str, Reader]] = [
        ("count", lambda s: float(histogram(s).count)),
        ("sum", lambda s: histogram(s).sum),
    ]
    readers += [(suffix, _percentile(histogram, fraction)) for suffix, fraction in _PERCENTILES]
    return readers


def _percentile(histogram: Callable[[object], HistogramSnapshot], fraction: float) -> Reader:
    def read(snapshot: object) -> float:
        return histogram(snapshot).percentile(fraction)

    return read


class _Latest:
    """`source.metrics()`, taken at most once per `_SNAPSHOT_S`.

    The callbacks of one collection (one per instrument, some 40 of them) read one consistent
    snapshot, and a blocking object's loop is asked once, not 40 times.
    """

    def __init__(self, source: Measured) -> None:
        self._source = source
        self._taken_at = -math.inf
        self._snapshot: object = None

    def get(self) -> object:
        now = time.monotonic()
        if now - self._taken_at >= _SNAPSHOT_S:
            self._snapshot, self._taken_at = self._source.metrics(), now
        return self._snapshot


def _callback(
    latest: _Latest, read: Reader, labels: Mapping[str, str]
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        value = read(latest.get())
        if value is None or not math.isfinite(value):  # a percentile in the overflow bucket
            return []
        return [Observation(value, dict(labels))]

    return observe
