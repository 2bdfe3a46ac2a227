"""Raw-socket ingest benchmark for the embedded server: 100-byte TLV records, 256 KiB batches.

Runs a `ServerThread` in this process and N asyncio connections that pipeline pre-built ingest
frames and count Acks (durable: every Ack follows an fsync). Prints records/s, MB/s and the
server's fsyncs/s.  Usage: python benchmarks/server_ingest.py [--connections 4] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from lnc_client.protocol.control import create_topic_payload
from lnc_client.protocol.frame import (
    HEADER_SIZE,
    ControlCommand,
    build_control_frame,
    build_ingest_frame,
)
from lnc_client.protocol.records import encode_values
from lnc_client.server import ServerThread

RECORD = 100
BATCH = 256 * 1024


async def produce(port: int, topic: int, seconds: float, window: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    count = BATCH // RECORD
    payload = encode_values([bytes(RECORD - 5)] * count)
    frames = [
        build_ingest_frame(payload, batch_id=i, record_count=count, topic_id=topic)
        for i in range(window)
    ]
    for frame in frames:
        writer.write(frame)
    sent, acked = window, 0
    deadline = time.perf_counter() + seconds
    while acked < sent:
        await reader.readexactly(HEADER_SIZE)
        acked += 1
        if time.perf_counter() < deadline:
            writer.write(frames[sent % window])
            sent += 1
    writer.close()
    await writer.wait_closed()
    return acked * count


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data, ServerThread(data, port=0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            build_control_frame(ControlCommand.CREATE_TOPIC, create_topic_payload("bench"))
        )
        await reader.readexactly(HEADER_SIZE)
        await reader.read(1000)
        writer.close()
        fsyncs_before = server.server.fsync_count
        started = time.perf_counter()
        results = await asyncio.gather(
            *(produce(server.port, 1, args.seconds, args.window) for _ in range(args.connections))
        )
        elapsed = time.perf_counter() - started
        fsyncs = server.server.fsync_count - fsyncs_before
        records = sum(results)
        print(
            f"{args.connections} connections: {records / elapsed:,.0f} records/s "
            f"({records * RECORD / elapsed / 1e6:,.0f} MB/s), {fsyncs / elapsed:,.0f} fsyncs/s"
        )


if __name__ == "__main__":
    asyncio.run(main())
