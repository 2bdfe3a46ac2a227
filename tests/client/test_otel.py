"""OpenTelemetry reporting of metrics() snapshots (`lnc_client.otel`), with the SDK's reader."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from lnc_client import Producer, StandaloneConsumer
from lnc_client.metrics import LATENCY_BOUNDS_S, HistogramSnapshot
from lnc_client.otel import instrument
from lnc_client.protocol.control import TopicInfo


def collected(reader: InMemoryMetricReader) -> dict[str, tuple[float, dict[str, str]]]:
    data = reader.get_metrics_data()
    assert data is not None
    found = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    found[metric.name] = (point.value, dict(point.attributes or {}))
    return found


async def test_producer_and_consumer_metrics_reach_opentelemetry(
    lance_producer: Producer, lance_consumer: StandaloneConsumer, lance_topic: TopicInfo
) -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    names = instrument(lance_producer, "lnc.producer", meter=meter, attributes={"app": "t"})
    names += instrument(lance_consumer, "lnc.consumer", meter=meter)
    assert "lnc.producer.ack_latency.p99" in names
    await lance_producer.send_batch(lance_topic.id, [b"abc"] * 5)
    await lance_consumer.poll(timeout=2)
    values = collected(reader)
    assert values["lnc.producer.records_acked"] == (5, {"app": "t"})
    assert values["lnc.producer.ack_latency.count"][0] == 1
    assert 0 < values["lnc.producer.ack_latency.p99"][0] <= 10
    assert values["lnc.consumer.records_received"][0] == 5
    assert values["lnc.consumer.lag"][0] == 0
    assert "lnc.consumer.committed_offset" not in values  # None is not observed


@dataclass(frozen=True, slots=True)
class Snapshot:
    records: int
    latency: HistogramSnapshot


SLOW = HistogramSnapshot(counts=(0,) * len(LATENCY_BOUNDS_S) + (1,), count=1, sum=60.0)
"""One observation above the last bound: its p50 and p99 are +Inf."""


class Counted:
    """A metrics source that counts its snapshots."""

    def __init__(self) -> None:
        self.calls = 0

    def metrics(self) -> Snapshot:
        self.calls += 1
        return Snapshot(records=self.calls, latency=SLOW)


def test_one_collection_takes_one_snapshot_and_skips_infinite_values() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    source = Counted()
    names = instrument(source, "t", meter=meter)
    assert len(names) > 3
    values = collected(reader)
    assert source.calls == 2  # one to list the fields, one for the whole collection
    assert values["t.records"][0] == 2  # every instrument read that one snapshot
    assert values["t.latency.count"][0] == 1
    assert "t.latency.p99" not in values  # +Inf is not observed
