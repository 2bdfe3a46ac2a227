"""`metrics()` snapshots of the producer, the consumer and the admin client; Prometheus text."""

from __future__ import annotations

import math

import pytest

from lnc_client import (
    ConsumerMetrics,
    LanceClient,
    LanceError,
    Producer,
    StandaloneConsumer,
    TopicNotFoundError,
)
from lnc_client.metrics import HistogramSnapshot, LatencyHistogram, prometheus_text
from lnc_client.protocol.control import TopicInfo


def test_histogram_buckets_percentiles_and_mean() -> None:
    histogram = LatencyHistogram()
    for seconds in (0.0002, 0.0002, 0.003, 0.04, 20.0):
        histogram.observe(seconds)
    snapshot = histogram.snapshot()
    assert snapshot.count == 5
    assert sum(snapshot.counts) == 5
    assert snapshot.sum == pytest.approx(20.0434)
    assert snapshot.percentile(0.4) == 0.00025
    assert snapshot.percentile(0.6) == 0.005
    assert snapshot.percentile(0.8) == 0.05
    assert snapshot.percentile(1.0) == math.inf
    assert HistogramSnapshot().percentile(0.99) == 0.0
    histogram.observe(1.0)
    assert snapshot.count == 5  # a snapshot never changes


async def test_producer_consumer_and_client_count_what_they_did(
    lance_client: LanceClient,
    lance_producer: Producer,
    lance_consumer: StandaloneConsumer,
    lance_topic: TopicInfo,
) -> None:
    await lance_producer.send_batch(lance_topic.id, [b"x" * 10] * 3)
    await lance_producer.send(lance_topic.id, b"y")
    produced = lance_producer.metrics()
    assert (produced.records_acked, produced.batches_acked) == (4, 2)
    assert produced.ack_latency.count == 2
    assert 0 < produced.ack_latency.sum < 5

    result = await lance_consumer.poll(timeout=2)
    assert result is not None
    await lance_consumer.commit()
    consumed = lance_consumer.metrics()
    assert isinstance(consumed, ConsumerMetrics)
    assert consumed.records_received == 4
    assert consumed.bytes_received == 3 * 15 + 6
    assert consumed.batches_received == 1
    assert consumed.fetches >= 1
    assert consumed.fetch_latency.count >= 1
    assert consumed.commits == 1
    assert consumed.errors == 0
    assert consumed.current_offset == consumed.committed_offset == 51
    assert consumed.lag == 0
    assert consumed.high_water_mark == 51

    before = lance_client.metrics()
    await lance_client.list_topics()
    with pytest.raises(TopicNotFoundError):
        await lance_client.get_topic(999)
    after = lance_client.metrics()
    assert after.requests - before.requests == 2
    assert after.errors - before.errors == 1
    assert after.request_latency.count - before.request_latency.count == 2
    assert after.retries == 0

    await lance_client.delete_topic(lance_topic.id)
    with pytest.raises(LanceError):
        await lance_consumer.poll(timeout=2)
    assert lance_consumer.metrics().errors == 1


def test_prometheus_text_renders_counters_and_histograms() -> None:
    histogram = LatencyHistogram()
    histogram.observe(0.003)
    snapshot = ConsumerMetrics(
        records_received=4,
        bytes_received=51,
        batches_received=1,
        fetches=2,
        empty_fetches=1,
        catching_up_replies=0,
        retries=0,
        reconnects=0,
        errors=0,
        commits=1,
        current_offset=51,
        committed_offset=None,
        high_water_mark=51,
        lag=0,
        fetch_latency=histogram.snapshot(),
    )
    text = prometheus_text(snapshot, "lnc_consumer", {"topic": 'a"b'})
    lines = text.splitlines()
    assert "# TYPE lnc_consumer_records_received gauge" in lines
    assert 'lnc_consumer_records_received{topic="a\\"b"} 4' in lines
    assert not any("committed_offset" in line for line in lines)  # None is left out
    assert 'lnc_consumer_fetch_latency_seconds_bucket{topic="a\\"b",le="0.0025"} 0' in lines
    assert 'lnc_consumer_fetch_latency_seconds_bucket{topic="a\\"b",le="0.005"} 1' in lines
    assert 'lnc_consumer_fetch_latency_seconds_bucket{topic="a\\"b",le="+Inf"} 1' in lines
    assert 'lnc_consumer_fetch_latency_seconds_count{topic="a\\"b"} 1' in lines
    with pytest.raises(TypeError):
        prometheus_text(42, "x")
