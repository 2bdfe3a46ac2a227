"""The produce / consume / latency workload shared by `lnc bench` and `lnc demo`.

Data flow: `produce` sends `Workload.records` values with `Producer.send_async` (each value
starts with its 12-digit sequence number) and `flush()`es, so every record counted was
acknowledged durably; `consume` reads them back with a `StandaloneConsumer` and checks that
each arrives, in order, with exactly the bytes sent; `send_latencies` times single `send` calls
(send, wait for the durable Ack). Each phase reports its progress to an optional `Progress` bar.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from lnc_client.cli.common import CliError, Endpoint, Progress
from lnc_client.config import Address, ProducerConfig, SeekPosition, StandaloneConfig
from lnc_client.consumer import StandaloneConsumer
from lnc_client.producer import Producer
from lnc_client.protocol.records import RecordType

__all__ = [
    "SEQUENCE_DIGITS",
    "Report",
    "Workload",
    "consume",
    "percentile",
    "produce",
    "run_workload",
    "send_latencies",
]

SEQUENCE_DIGITS: Final = 12
_PROGRESS_EVERY: Final = 1024


@dataclass(frozen=True, slots=True)
class Workload:
    """What to send.

    Attributes:
        records: Records to produce and verify.
        record_size: Bytes per record value (at least `SEQUENCE_DIGITS`).
        batch_size: Producer batch size in bytes.
        latency_samples: Single sends timed for latency (0: none).
    """

    records: int
    record_size: int
    batch_size: int = 256 * 1024
    latency_samples: int = 0

    def value(self, sequence: int) -> bytes:
        """The value of record number `sequence`: its number, then filler."""
        return b"%012d" % sequence + b"x" * (self.record_size - SEQUENCE_DIGITS)


async def produce(
    address: str | Address,
    config: ProducerConfig,
    topic_id: int,
    workload: Workload,
    progress: Progress | None = None,
) -> float:
    """Produce every record of `workload` and wait for every Ack; return the seconds taken."""
    filler = b"x" * (workload.record_size - SEQUENCE_DIGITS)
    started = time.perf_counter()
    async with await Producer.connect(address, config) as producer:
        send_async = producer.send_async
        for sequence in range(workload.records):
            await send_async(topic_id=topic_id, data=b"%012d" % sequence + filler)
            if progress is not None and sequence % _PROGRESS_EVERY == 0:
                progress.update(sequence)
        await producer.flush()
    if progress is not None:
        progress.update(workload.records)
        progress.finish()
    return time.perf_counter() - started


async def consume(
    address: str | Address,
    config: StandaloneConfig,
    workload: Workload,
    progress: Progress | None = None,
) -> float:
    """Consume every record of `workload` and verify it; return the seconds taken.

    Raises:
        CliError: A record is missing, out of order, altered, or the stream stalled.
    """
    expected = 0
    started = time.perf_counter()
    async with await StandaloneConsumer.connect(address, config) as consumer:
        while expected < workload.records:
            result = await consumer.poll(timeout=10.0)
            if result is None:
                raise CliError(f"no records after {expected}: the stream stalled")
            for record in result.records:
                if record.record_type != RecordType.RAW_DATA:
                    raise CliError(f"record {expected}: type {record.record_type:#04x}")
                if record.value != workload.value(expected):
                    raise CliError(f"record {expected}: unexpected bytes {record.value[:20]!r}")
                expected += 1
            if progress is not None:
                progress.update(expected)
        if consumer.lag != 0:
            raise CliError(f"lag is {consumer.lag} after the last record, not 0")
    if progress is not None:
        progress.finish()
    return time.perf_counter() - started


async def send_latencies(
    address: str | Address, config: ProducerConfig, topic_id: int, samples: int
) -> list[float]:
    """Time `samples` single sends (each waits for its durable Ack); return them sorted."""
    timings: list[float] = []
    async with await Producer.connect(address, config) as producer:
        for sequence in range(samples):
            started = time.perf_counter()
            await producer.send(topic_id=topic_id, data=b"latency-%d" % sequence)
            timings.append(time.perf_counter() - started)
    return sorted(timings)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (0.0 when there are none)."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


@dataclass(frozen=True, slots=True)
class Report:
    """What `run_workload` measured.

    Attributes:
        produce_s: Seconds to produce every record (until the last Ack).
        consume_s: Seconds to consume and verify every record.
        latencies: Single-send latencies in seconds, sorted.
    """

    produce_s: float
    consume_s: float
    latencies: list[float]


async def run_workload(
    where: Endpoint, topic_id: int, latency_topic_id: int, workload: Workload
) -> Report:
    """Produce, consume and verify `workload` on `topic_id`, then time single sends.

    Progress bars are drawn on stderr when it is a terminal.
    """
    producer_config = where.producer_config(
        batch_size=workload.batch_size,
        linger_ms=5,
        buffer_memory=max(64 * 1024 * 1024, 4 * workload.batch_size),
    )
    produce_s = await produce(
        where.address, producer_config, topic_id, workload, Progress("produce", workload.records)
    )
    consumer_config = where.consumer_config(
        topic_id,
        start_position=SeekPosition.BEGINNING,
        max_fetch_bytes=4 * 1024 * 1024,
        poll_timeout_s=0.1,
    )
    consume_s = await consume(
        where.address, consumer_config, workload, Progress("consume", workload.records)
    )
    latencies = []
    if workload.latency_samples:
        latencies = await send_latencies(
            where.address,
            where.producer_config(batch_size=64 * 1024, linger_ms=0),
            latency_topic_id,
            workload.latency_samples,
        )
    return Report(produce_s, consume_s, latencies)
