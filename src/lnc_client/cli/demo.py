"""`lnc demo`: the end-to-end demonstration, and the README's main job.

It starts the embedded server as a child process (`python -m lnc_client.server --port 0`) on a
temporary directory, so that client and server each get a core, then:

1. creates a topic with `LanceClient`;
2. produces N records of a fixed size with `Producer.send_async` (each record carries its sequence
   number) and `flush()`es, so every record counted was acknowledged durably by the server;
3. consumes them back with `StandaloneConsumer` and checks that every record arrives, in order,
   with exactly the bytes sent;
4. times single `send` calls (send, wait for the durable ack) for latency percentiles;
5. stops the server and deletes the directory, whatever happened.

It prints throughput and latency and exits 0 only when every record was verified.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from lnc_client.admin import LanceClient
from lnc_client.config import ClientConfig, ProducerConfig, StandaloneConfig, parse_address
from lnc_client.consumer import StandaloneConsumer
from lnc_client.producer import Producer
from lnc_client.protocol.records import RecordType

__all__ = ["add_demo_parser", "run_demo"]

_SERVER_START_TIMEOUT_S: Final = 30.0
_SERVER_STOP_TIMEOUT_S: Final = 15.0
_SEQUENCE_DIGITS: Final = 12


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the demo does.

    Attributes:
        records: Records to produce and verify.
        record_size: Bytes per record value (at least 12: the sequence number).
        latency_samples: Single sends timed for latency.
        batch_size: Producer batch size in bytes.
    """

    records: int
    record_size: int
    latency_samples: int
    batch_size: int


def add_demo_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `demo` subcommand to the `lnc` parser."""
    parser = subparsers.add_parser(
        "demo",
        help="Produce, consume and verify records against an embedded server.",
        description="Start the embedded server on a temporary directory, produce records, "
        "consume them back, verify every one, and print throughput and latency.",
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="records to produce")
    parser.add_argument("--record-size", type=int, default=100, help="bytes per record")
    parser.add_argument(
        "--latency-samples", type=int, default=1000, help="single sends timed for latency"
    )
    parser.add_argument(
        "--batch-size", type=int, default=256 * 1024, help="producer batch size in bytes"
    )


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo with parsed arguments; return the exit status."""
    if args.record_size < _SEQUENCE_DIGITS or args.records < 1 or args.latency_samples < 0:
        print(
            f"lnc demo: need --records >= 1, --record-size >= {_SEQUENCE_DIGITS}, "
            "--latency-samples >= 0",
            file=sys.stderr,
        )
        return 2
    options = DemoOptions(args.records, args.record_size, args.latency_samples, args.batch_size)
    return asyncio.run(_demo(options))


def _value(sequence: int, filler: bytes) -> bytes:
    return b"%012d" % sequence + filler


@contextlib.asynccontextmanager
async def _server_process(data_dir: str) -> AsyncIterator[str]:
    """Run `python -m lnc_client.server` on `data_dir`; yield its address; always stop it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lnc_client.server",
        "--data-dir",
        data_dir,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(_SERVER_START_TIMEOUT_S):
            line = (await process.stdout.readline()).decode().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the server did not start: {line!r}")
        yield line.removeprefix("listening on ")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(_SERVER_STOP_TIMEOUT_S):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def _produce(address: str, topic_id: int, options: DemoOptions) -> float:
    filler = b"x" * (options.record_size - _SEQUENCE_DIGITS)
    config = ProducerConfig(
        batch_size=options.batch_size,
        linger_ms=5,
        buffer_memory=max(64 * 1024 * 1024, 4 * options.batch_size),
    )
    started = time.perf_counter()
    async with await Producer.connect(address, config) as producer:
        send_async = producer.send_async
        for sequence in range(options.records):
            await send_async(topic_id=topic_id, data=_value(sequence, filler))
        await producer.flush()
    return time.perf_counter() - started


async def _consume(address: str, topic_id: int, options: DemoOptions) -> tuple[float, int]:
    """Consume every record and verify it; return (seconds, records verified)."""
    filler = b"x" * (options.record_size - _SEQUENCE_DIGITS)
    config = StandaloneConfig(
        consumer_name="lnc-demo",
        topic_id=topic_id,
        max_fetch_bytes=4 * 1024 * 1024,
        auto_commit_interval_s=None,
    )
    expected = 0
    started = time.perf_counter()
    async with await StandaloneConsumer.connect(address, config) as consumer:
        while expected < options.records:
            result = await consumer.poll(timeout=10.0)
            if result is None:
                raise RuntimeError(f"no records after {expected}: the stream stalled")
            for record in result.records:
                if record.record_type != RecordType.RAW_DATA:
                    raise RuntimeError(f"record {expected}: type {record.record_type:#04x}")
                if record.value != _value(expected, filler):
                    raise RuntimeError(f"record {expected}: unexpected bytes {record.value[:20]!r}")
                expected += 1
        if consumer.lag != 0:
            raise RuntimeError(f"lag is {consumer.lag} after the last record, not 0")
    return time.perf_counter() - started, expected


async def _latency(address: str, topic_id: int, samples: int) -> list[float]:
    timings: list[float] = []
    async with await Producer.connect(address, ProducerConfig(linger_ms=0)) as producer:
        for sequence in range(samples):
            started = time.perf_counter()
            await producer.send(topic_id=topic_id, data=b"latency-%d" % sequence)
            timings.append(time.perf_counter() - started)
    return sorted(timings)


def _percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


async def _demo(options: DemoOptions) -> int:
    with tempfile.TemporaryDirectory(prefix="lnc-demo-") as data_dir:
        async with _server_process(data_dir) as address:
            print(f"lnc demo: embedded server listening on {address}, data in {data_dir}")
            host_port = parse_address(address)
            async with LanceClient(ClientConfig(host=host_port.host, port=host_port.port)) as admin:
                topic = await admin.create_topic(f"demo-{os.getpid()}")
                latency_topic = await admin.create_topic(f"demo-latency-{os.getpid()}")
            print(f"topic {topic.name!r} has id {topic.id}")

            produce_s = await _produce(address, topic.id, options)
            rate = options.records / produce_s
            print(
                f"produced {options.records:,} records of {options.record_size} B in "
                f"{produce_s:.2f} s: {rate:,.0f} records/s "
                f"({rate * options.record_size / 1e6:.1f} MB/s), every one acknowledged durably"
            )

            consume_s, verified = await _consume(address, topic.id, options)
            print(
                f"consumed {verified:,} records in {consume_s:.2f} s: "
                f"{verified / consume_s:,.0f} records/s, every one verified, in order"
            )

            if options.latency_samples:
                timings = await _latency(address, latency_topic.id, options.latency_samples)
                p50, p99 = _percentile(timings, 0.50), _percentile(timings, 0.99)
                worst = timings[-1]
                print(
                    f"single send latency over {len(timings):,} sends (durable ack): "
                    f"p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, max {worst * 1e3:.2f} ms"
                )
    print("lnc demo: OK")
    return 0
