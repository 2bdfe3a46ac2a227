"""The measurements of the benchmark matrix, one async function per case (run by `run.py`).

Each case runs in a fresh child process (`python benchmarks/run.py --child CASE ...`) against a
server that `run.py` started, so the client's CPU, RSS and garbage collector belong to that
case alone. A case takes the server address and its parameters and returns a flat dict of
metrics whose names carry their unit and direction (`compare.py` reads them):
`*_per_s` and `*_mb_s` are better higher; `*_ms`, `*_us`, `*_pct` and `*_mib` better lower.

Records carry no payload meaning except in the latency cases, whose first 8 bytes are the
`time.perf_counter_ns()` of the send (producer and consumer share the process and the clock).
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import resource
import struct
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from lnc_client.admin import LanceClient
from lnc_client.cli.workload import percentile  # the one `lnc bench` uses
from lnc_client.config import ClientConfig, ProducerConfig, StandaloneConfig, parse_address
from lnc_client.connection import Connection
from lnc_client.consumer import StandaloneConsumer
from lnc_client.errors import BackpressureError, LanceError
from lnc_client.producer import Producer, SendAck

Params = dict[str, Any]
Metrics = dict[str, float]
Case = Callable[[str, Params], Awaitable[Metrics]]

_STAMP = struct.Struct("<q")
BIG_BUFFER = 256 * 1024 * 1024


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_cpu_seconds() -> float:
    """utime + stime of the server process (all threads), 0 when its pid is unknown."""
    pid = os.environ.get("LNC_BENCH_SERVER_PID")
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    """Wall time, this process's CPU and the server's CPU over a timed section."""

    def __init__(self) -> None:
        self.cpu, self.server = cpu_seconds(), server_cpu_seconds()
        self.started = time.perf_counter()

    def rates(self, records: int, size: int) -> Metrics:
        """Records/s, MB/s and the CPU per record of both sides since the meter started."""
        elapsed = time.perf_counter() - self.started
        cpu, server = cpu_seconds() - self.cpu, server_cpu_seconds() - self.server
        return {
            "records_per_s": records / elapsed,
            "payload_mb_s": records * size / elapsed / 1e6,
            "client_cpu_us_per_record": cpu / records * 1e6,
            "server_cpu_us_per_record": server / records * 1e6,
            "server_cpu_pct": server / elapsed * 100,
        }


class GcWatch:
    """Counts this process's garbage collections and their longest pause while active."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self.full = 0
        self._started = 0.0

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._started)
            self.full += info["generation"] == 2

    def metrics(self) -> Metrics:
        """Collections, full (gen 2) collections and the longest pause."""
        return {
            "gc_collections": float(len(self.pauses)),
            "gc_full_collections": float(self.full),
            "gc_max_pause_ms": max(self.pauses, default=0.0) * 1e3,
        }


def latency_metrics(prefix: str, seconds: list[float]) -> Metrics:
    """p50/p99/p99.9/max of latencies in seconds, as `<prefix>_p50_ms` etc."""
    ordered = sorted(seconds)
    return {
        f"{prefix}_p50_ms": percentile(ordered, 0.50) * 1e3,
        f"{prefix}_p99_ms": percentile(ordered, 0.99) * 1e3,
        f"{prefix}_p999_ms": percentile(ordered, 0.999) * 1e3,
        f"{prefix}_max_ms": (ordered[-1] if ordered else float("nan")) * 1e3,
    }


async def create_topics(address: str, names: list[str]) -> list[int]:
    """Create topics (or find them) and return their ids."""
    parsed = parse_address(address)
    async with LanceClient(ClientConfig(host=parsed.host, port=parsed.port)) as admin:
        existing = {t.name: t.id for t in await admin.list_topics()}
        ids = []
        for name in names:
            if name not in existing:
                existing[name] = (await admin.create_topic(name)).id
            ids.append(existing[name])
    return ids


def _value(size: int) -> bytes:
    return bytes(65 + i % 26 for i in range(size))


# --- the disk's own ceiling ----------------------------------------------------------------------


async def disk(_address: str, params: Params) -> Metrics:
    """write+fdatasync of the data directory's disk: 4 KiB latency and the MB/s ceiling."""
    return await asyncio.to_thread(_disk, params)


def _disk(params: Params) -> Metrics:
    with tempfile.TemporaryDirectory(dir=params.get("dir")) as directory:
        path = os.path.join(directory, "probe")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            small = b"x" * 4096
            samples = []
            for _ in range(params["syncs"]):
                started = time.perf_counter()
                os.write(fd, small)
                os.fdatasync(fd)
                samples.append(time.perf_counter() - started)
            chunk = b"y" * params["chunk"]
            written = 0
            started = time.perf_counter()
            while time.perf_counter() - started < params["seconds"]:
                os.write(fd, chunk)
                os.fdatasync(fd)
                written += len(chunk)
            elapsed = time.perf_counter() - started
        finally:
            os.close(fd)
    return {
        **latency_metrics("fsync_4k", samples),
        "ceiling_mb_s": written / elapsed / 1e6,
    }


# --- producing -----------------------------------------------------------------------------------


async def produce_batch(address: str, params: Params) -> Metrics:
    """`send_batch_async` of `per_call` records per call over `connections` producers."""
    size, per_call, connections = params["size"], params["per_call"], params["connections"]
    topic = (await create_topics(address, [f"batch-{os.getpid()}"]))[0]
    values = [_value(size)] * per_call
    calls = max(1, params["records"] // per_call // connections)
    config = ProducerConfig(
        batch_size=params.get("batch_size", 256 * 1024), buffer_memory=BIG_BUFFER
    )
    producers = [await Producer.connect(address, config) for _ in range(connections)]

    async def run(producer: Producer) -> None:
        for _ in range(calls):
            await producer.send_batch_async(topic, values)
        await producer.flush()

    try:
        meter = Meter()
        await asyncio.gather(*(run(p) for p in producers))
        acked = sum(p.metrics().records_acked for p in producers)
        result = meter.rates(acked, size)
    finally:
        for producer in producers:
            await producer.close()
    return result


async def produce_records(address: str, params: Params) -> Metrics:
    """One record per call (`send_async` or `send_nowait`) round-robin over `topics`, then flush.

    Default `ProducerConfig`: a larger `buffer_memory` lets the producer run further ahead of
    the server, and every byte of it is then touched for the first time (a page fault and the
    kernel zeroing a page per 4 KiB): 256 MiB cost 0.03-0.2 us more CPU per record than the
    default 32 MiB here (`perf`: up to 22% of the client's samples in `clear_page_erms`).

    With `connections` > 1, that many producers (one connection each) share the records.
    """
    size, mode, topic_count = params["size"], params["mode"], params["topics"]
    names = [f"rec-{os.getpid()}-{i}" for i in range(topic_count)]
    topics = await create_topics(address, names)
    value = _value(size)
    count = params.get("connections", 1)
    records = params["records"] // count
    config = ProducerConfig()  # the defaults (buffer_memory 32 MiB), as the targets say
    producers = [await Producer.connect(address, config) for _ in range(count)]

    async def run(producer: Producer) -> None:
        if mode == "send_async":
            send_async = producer.send_async
            if topic_count == 1:
                topic = topics[0]
                for _ in range(records):
                    await send_async(topic, value)
            else:
                for i in range(records):
                    await send_async(topics[i % topic_count], value)
        else:
            await _nowait_loop(producer, topics, value, records)
        await producer.flush()

    try:
        meter = Meter()
        await asyncio.gather(*(run(p) for p in producers))
        acked = sum(p.metrics().records_acked for p in producers)
        batches = sum(p.metrics().batches_acked for p in producers)
        result = meter.rates(acked, size)
    finally:
        for producer in producers:
            await producer.close()
    result["records_per_batch"] = acked / max(1, batches)
    return result


async def rust_lnc_bench(address: str, params: Params) -> Metrics:
    """Lance's own Rust benchmark client (`lnc-bench`) against the same server.

    Runs `lnc-bench -e ADDRESS -s SIZE -c CONNECTIONS -d SECONDS -w 1` with its defaults
    otherwise (64 KiB batches, 1 ms linger, 64 in flight per connection) and reads its report.
    """
    command = [
        params["bin"],
        "-e",
        address,
        "-s",
        str(params["size"]),
        "-c",
        str(params["connections"]),
        "-d",
        str(params["seconds"]),
        "-w",
        "1",
        "--skip-latency-gate",
        "--min-throughput-msgs-per-sec",
        "0",
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    text = re.sub(r"\x1b\[[0-9;]*m", "", output.decode(errors="replace"))
    found = dict(re.findall(r"(Msg/sec|p50|p99|p99\.9):\s+([0-9.]+)", text))
    if process.returncode != 0 or "Msg/sec" not in found:
        raise RuntimeError(f"lnc-bench failed ({process.returncode}):\n{text[-2000:]}")
    return {
        "records_per_s": float(found["Msg/sec"]),
        "ack_p50_ms": float(found.get("p50", "nan")),
        "ack_p99_ms": float(found.get("p99", "nan")),
    }


async def _nowait_loop(producer: Producer, topics: list[int], value: bytes, records: int) -> None:
    """`send_nowait` in a tight loop, yielding to the loop every 10,000 records (and when full)."""
    send_nowait = producer.send_nowait
    count = len(topics)
    sent = 0
    while sent < records:
        chunk = min(10_000, records - sent)
        try:
            if count == 1:
                topic = topics[0]
                for _ in range(chunk):
                    send_nowait(topic, value)
                    sent += 1
            else:
                for _ in range(chunk):
                    send_nowait(topics[sent % count], value)
                    sent += 1
        except BackpressureError:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)


async def producer_rss(address: str, params: Params) -> Metrics:
    """RSS (peak) of this process while `send_async` pushes `records` records, then flushes."""
    topic = (await create_topics(address, [f"rss-{os.getpid()}"]))[0]
    value = _value(params["size"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    async with Producer(address, ProducerConfig()) as producer:
        send_async = producer.send_async
        started = time.perf_counter()
        for _ in range(params["records"]):
            await send_async(topic, value)
        await producer.flush()
        elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "peak_rss_mib": peak,
        "rss_before_mib": before,
        "records_per_s": params["records"] / elapsed,
    }


# --- latency -------------------------------------------------------------------------------------


async def send_latency(address: str, params: Params) -> Metrics:
    """`send` one record and await its ack, one at a time, default configuration."""
    topic = (await create_topics(address, [f"lat-{os.getpid()}"]))[0]
    value = _value(params["size"])
    samples = []
    async with Producer(address) as producer:
        for _ in range(params["warmup"]):
            await producer.send(topic, value)
        for _ in range(params["sends"]):
            started = time.perf_counter()
            await producer.send(topic, value)
            samples.append(time.perf_counter() - started)
    return latency_metrics("ack", samples)


async def end_to_end(address: str, params: Params) -> Metrics:
    """A paced producer (`send_async`) and a tailing consumer, both default-configured.

    Measures send-to-consumer latency, the ack latency (send to callback), the CPU of the process
    (producer and consumer) while records flow, and, first, the CPU of the consumer tailing an
    idle topic for `idle_s` seconds.
    """
    rate, seconds, size = params["rate"], params["seconds"], max(8, params["size"])
    topic = (await create_topics(address, [f"e2e-{os.getpid()}"]))[0]
    consumer_config = StandaloneConfig(f"e2e-{os.getpid()}", topic)
    producer_config = ProducerConfig(**params.get("producer", {}))
    delivered: list[float] = []
    acks: list[float] = []
    filler = b"z" * (size - 8)
    async with (
        StandaloneConsumer(address, consumer_config) as consumer,
        Producer(address, producer_config) as producer,
    ):
        idle_cpu = await _idle_cpu(consumer, params["idle_s"])
        total = int(rate * seconds)
        done = asyncio.Event()

        async def consume() -> None:
            while len(delivered) < total:
                result = await consumer.poll(timeout=1.0)
                if result is None:
                    continue
                now = time.perf_counter_ns()
                for record in result.records:
                    delivered.append((now - _STAMP.unpack_from(record.value)[0]) / 1e9)
            done.set()

        reader = asyncio.create_task(consume())
        cpu, started = cpu_seconds(), time.perf_counter()
        await _paced(producer, topic, filler, rate, total, acks)
        try:
            await asyncio.wait_for(done.wait(), timeout=30)
        finally:
            reader.cancel()
        busy = (cpu_seconds() - cpu) / (time.perf_counter() - started) * 100
    skip = len(delivered) // 20  # the first 5%: warm-up
    return {
        **latency_metrics("e2e", delivered[skip:]),
        **latency_metrics("ack", acks[skip:]),
        "idle_consumer_cpu_pct": idle_cpu,
        "process_cpu_pct": busy,
    }


async def _idle_cpu(consumer: StandaloneConsumer, seconds: float) -> float:
    """CPU of this process (only the consumer is active) while polling an empty topic."""
    cpu, started = cpu_seconds(), time.perf_counter()
    while time.perf_counter() - started < seconds:
        await consumer.poll(timeout=seconds)
    return (cpu_seconds() - cpu) / (time.perf_counter() - started) * 100


async def _paced(
    producer: Producer, topic: int, filler: bytes, rate: float, total: int, acks: list[float]
) -> None:
    """Send `total` records at `rate` per second (every 1 ms, the records due by then).

    Each record's ack latency (send to its callback) goes to `acks`. The harness allocates
    nothing the garbage collector tracks per record (one bound callback, int stamps in a
    deque: one topic acks in send order), so a GC tail measured here is the library's.
    """
    stamps: deque[int] = deque()
    pop, now_ns = stamps.popleft, time.perf_counter_ns

    def on_ack(ack: SendAck | None, error: LanceError | None) -> None:
        acks.append((now_ns() - pop()) / 1e9)

    started = time.perf_counter()
    sent = 0
    pack, send_nowait, push = _STAMP.pack, producer.send_nowait, stamps.append
    while sent < total:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        try:
            while sent < due:
                stamp = now_ns()
                send_nowait(topic, pack(stamp) + filler, callback=on_ack)
                push(stamp)
                sent += 1
        except BackpressureError:
            pass  # the buffer is full: the rate is more than the system takes; wait
        await asyncio.sleep(0.001)


async def ack_tail(address: str, params: Params) -> Metrics:
    """Ack latency distribution (send to callback) at a fixed rate, no consumer."""
    rate, seconds, size = params["rate"], params["seconds"], max(8, params["size"])
    topic = (await create_topics(address, [f"tail-{os.getpid()}"]))[0]
    acks: list[float] = []
    filler = b"t" * (size - 8)
    total = int(rate * seconds)
    async with Producer(address, ProducerConfig(**params.get("producer", {}))) as producer:
        with GcWatch() as watch:
            started = time.perf_counter()
            await _paced(producer, topic, filler, rate, total, acks)
            await producer.flush()
            achieved = len(acks) / (time.perf_counter() - started)
    skip = len(acks) // 20
    return {
        **latency_metrics("ack", acks[skip:]),
        **watch.metrics(),
        "acked_records_per_s": achieved,
    }


# --- consuming -----------------------------------------------------------------------------------


async def consume(address: str, params: Params) -> Metrics:
    """Fill a topic with raw pipelined ingests, then read it from offset 0 into `TlvRecord`s.

    `poll` iterates each result's records (they are built as they are read), `iter` runs
    `async for record in consumer`: both hand every record to the loop as an object.
    """
    size, records, mode = params["size"], params["records"], params["mode"]
    topic = await _fill(address, records, size)
    config = StandaloneConfig(f"c-{mode}", topic, auto_commit_interval_s=None, poll_timeout_s=5.0)
    async with StandaloneConsumer(address, config) as consumer:
        received = 0
        meter = Meter()
        if mode == "iter":
            async for _record in consumer:
                received += 1
                if received == records:
                    break
        else:
            while received < records:
                result = await consumer.poll()
                if result is not None:
                    for _record in result.records:  # builds each TlvRecord, as a reader does
                        received += 1
        return meter.rates(received, size)


async def _fill(address: str, records: int, size: int) -> int:
    from lnc_client.config import ConnectionOptions
    from lnc_client.protocol.records import encode_values

    topic = (await create_topics(address, [f"fill-{os.getpid()}"]))[0]
    per_batch = max(1, min(10_000, (1 << 20) // (size + 5)))
    payload = encode_values([_value(size)] * per_batch)
    conn = await Connection.open(address, ConnectionOptions(request_timeout_s=60))
    try:
        loop = asyncio.get_running_loop()
        window = asyncio.Semaphore(16)
        futures = []
        for batch_id in range(1, -(-records // per_batch) + 1):
            await window.acquire()
            future: asyncio.Future[None] = loop.create_future()
            futures.append(future)

            def done(_: int, error: LanceError | None, f: asyncio.Future[None] = future) -> None:
                window.release()
                if error is None:
                    f.set_result(None)
                else:
                    f.set_exception(error)

            conn.send_ingest(
                topic, payload, batch_id=batch_id, record_count=per_batch, on_done=done
            )
        await asyncio.gather(*futures)
    finally:
        await conn.close()
    return topic


CASES: dict[str, Case] = {
    "disk": disk,
    "produce_batch": produce_batch,
    "produce_records": produce_records,
    "rust_lnc_bench": rust_lnc_bench,
    "producer_rss": producer_rss,
    "send_latency": send_latency,
    "end_to_end": end_to_end,
    "ack_tail": ack_tail,
    "consume": consume,
}
