"""Server metrics (`LanceServer.metrics()`) and the Prometheus and health HTTP endpoints."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lnc_client import LanceClient, Producer
from lnc_client.errors import LanceError
from lnc_client.server import LanceServer
from lnc_client.server.storage.segments import TopicSnapshot


async def http(address: str, method: str, path: str) -> tuple[int, dict[str, str], str]:
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = response.decode().partition("\r\n\r\n")
    status_line, *header_lines = head.split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    assert int(headers["Content-Length"]) == len(body.encode())
    return int(status_line.split()[1]), headers, body


async def test_a_fetch_that_failed_to_read_is_not_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with LanceServer(tmp_path / "data", port=0) as server:
        async with LanceClient(server.address) as client:
            topic = await client.create_topic("m")
            async with Producer(server.address) as producer:
                await producer.send(topic.id, b"y")

            def broken(*_: object) -> bytes:
                raise OSError(errno.EIO, "Input/output error")

            monkeypatch.setattr(TopicSnapshot, "read", broken)
            with pytest.raises(LanceError, match="I/O error"):
                await client.fetch(topic.id, 0, 1000)
        metrics = server.metrics()
        assert (metrics.fetches, metrics.fetch_bytes) == (0, 0)


async def test_metrics_count_connections_requests_ingest_and_fetches(tmp_path: Path) -> None:
    async with LanceServer(tmp_path / "data", port=0) as server:
        assert server.metrics_address is None  # off unless asked for
        async with LanceClient(server.address) as client:
            topic = await client.create_topic("m")
            async with Producer(server.address) as producer:
                await producer.send_batch(topic.id, [b"x" * 10] * 4)
                await producer.send(topic.id, b"y")
            await client.fetch(topic.id, 0, 1000)
            metrics = server.metrics()
        assert metrics.connections_accepted == 2
        assert metrics.connections_open >= 0
        assert metrics.ingest_batches == 2
        assert metrics.ingest_bytes == 4 * 15 + 6
        assert metrics.ingest_errors == 0
        assert metrics.fetches == 1
        assert metrics.fetch_bytes == 66
        assert metrics.topics == 1
        assert metrics.control_requests == 2  # CreateTopic, Fetch
        assert metrics.write_latency.count >= 1
        assert metrics.fsyncs >= 1
        await server.restart()
        assert server.metrics().ingest_batches == 2  # kept across restarts


async def test_prometheus_and_health_endpoints(tmp_path: Path) -> None:
    async with LanceServer(
        tmp_path / "data", port=0, metrics_addr="127.0.0.1:0", health_addr="127.0.0.1:0"
    ) as server:
        async with LanceClient(server.address) as client:
            await client.create_topic("p")
        assert server.metrics_address is not None
        assert server.health_address is not None
        status, headers, body = await http(server.metrics_address, "GET", "/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert re.search(r"^lnc_server_topics 1$", body, re.MULTILINE)
        assert re.search(r'^lnc_server_write_latency_seconds_bucket\{le="\+Inf"\} \d+$', body, re.M)
        assert (await http(server.metrics_address, "GET", "/nope"))[0] == 404

        health = server.health_address
        assert (await http(health, "GET", "/health/live"))[::2] == (200, '{"status":"alive"}')
        assert (await http(health, "GET", "/health/startup"))[0] == 200
        status, _, body = await http(health, "GET", "/health/ready")
        assert (status, json.loads(body)["status"]) == (200, "ready")
        assert (await http(health, "DELETE", "/admin/ready"))[0] == 200
        status, _, body = await http(health, "GET", "/health")
        assert status == 503
        assert json.loads(body) == {
            "alive": True,
            "ready": False,
            "data_plane_ready": False,
            "coordinator_ready": True,
            "startup_complete": True,
        }
        assert (await http(health, "POST", "/admin/ready"))[0] == 200
        assert (await http(health, "GET", "/health/ready"))[0] == 200
        assert json.loads((await http(health, "GET", "/admin/info"))[2])["build"] == "lnc-client"
        assert (await http(health, "GET", "/nowhere"))[0] == 404
        host, _, port = health.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"garbage\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 400")
        writer.close()
        metrics_address = server.metrics_address
    assert server.metrics_address is None
    try:
        await http(metrics_address, "GET", "/metrics")
    except OSError:
        pass
    else:
        raise AssertionError("the metrics endpoint still answers after stop()")


def test_lnc_serve_metrics_and_health_flags(tmp_path: Path) -> None:
    with subprocess.Popen(
        [
            sys.executable, "-m", "lnc_client.server", "--data-dir", str(tmp_path / "d"),
            "--port", "0", "--metrics", "127.0.0.1:0", "--health", "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline() for _ in range(3)]
            assert lines[0].startswith("listening on 127.0.0.1:")
            metrics = re.fullmatch(r"metrics on http://(\S+)/metrics\n", lines[1])
            health = re.fullmatch(r"health on http://(\S+)/health\n", lines[2])
            assert metrics
            assert health

            async def probe() -> None:
                assert (await http(metrics.group(1), "GET", "/metrics"))[0] == 200
                assert (await http(health.group(1), "GET", "/health/live"))[0] == 200

            asyncio.run(probe())
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        assert process.returncode == 0, process.stderr.read() if process.stderr else ""
        assert os.path.isdir(tmp_path / "d")
