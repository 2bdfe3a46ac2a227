"""The embedded server's counters (`LanceServer.metrics()`) and its HTTP endpoints.

`ServerStats` lives as long as the `LanceServer` (across restarts). The sessions, the command
handler and the storage writer add to it on the event loop: one increment per connection,
control request, fetch or written chunk of ingests, never per record. `ServerMetrics` is the
frozen snapshot.

`ObservabilityEndpoints` serves them over HTTP/1.1, on ports of their own, as the real Lance
server does: a Prometheus endpoint (`metrics_addr`, path `/metrics`) and the health endpoint
(`health_addr`): `/health/live`, `/health/ready`, `/health/startup`, `/health`, plus the real
server's `/metrics` note and `/admin/info`, `POST`/`DELETE /admin/ready` to take the server
out of (and back into) readiness. Each response closes its connection; requests are read with a
size bound and a timeout, so a slow or hostile client cannot hold the endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from lnc_client.metrics import HistogramSnapshot, LatencyHistogram, prometheus_text

__all__ = ["ObservabilityEndpoints", "ServerMetrics", "ServerStats"]


_REQUEST_LIMIT: Final = 8192
_REQUEST_TIMEOUT_S: Final = 5.0


@functools.cache
def _version() -> str:
    try:
        return importlib.metadata.version("lnc-client")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class ServerMetrics:
    """A snapshot of the server's counters (`LanceServer.metrics()`).

    Attributes:
        connections_accepted: Client connections accepted since the server was created.
        connections_open: Client connections open now.
        control_requests: Control frames answered (Fetch included).
        ingest_batches: Ingest frames written durably (acknowledged or refused by the write).
        ingest_bytes: Payload bytes of those frames.
        ingest_errors: Ingest frames whose write failed (answered with an `I/O error`).
        fetches: Fetch requests that returned data.
        fetch_bytes: Bytes returned by those fetches.
        topics: Topics now.
        fsyncs: Segment syncs since the last start.
        uptime_s: Seconds since the server was created.
        write_latency: Time from handing ingests to the writer to their durability.
    """

    connections_accepted: int
    connections_open: int
    control_requests: int
    ingest_batches: int
    ingest_bytes: int
    ingest_errors: int
    fetches: int
    fetch_bytes: int
    topics: int
    fsyncs: int
    uptime_s: float
    write_latency: HistogramSnapshot


class ServerStats:
    """The counters behind `ServerMetrics`, updated in place on the server's event loop."""

    __slots__ = (
        "connections_accepted",
        "control_requests",
        "created_at",
        "fetch_bytes",
        "fetches",
        "ingest_batches",
        "ingest_bytes",
        "ingest_errors",
        "ready",
        "write_latency",
    )

    def __init__(self) -> None:
        self.created_at = time.monotonic()
        self.connections_accepted = 0
        self.control_requests = 0
        self.ingest_batches = 0
        self.ingest_bytes = 0
        self.ingest_errors = 0
        self.fetches = 0
        self.fetch_bytes = 0
        self.write_latency = LatencyHistogram()
        self.ready = True
        """Cleared by `DELETE /admin/ready` (maintenance), set again by `POST`."""

    def written(self, batches: int, nbytes: int, seconds: float, failed: bool) -> None:
        """Account for one chunk of ingests the writer finished (durable, or failed)."""
        self.ingest_batches += batches
        self.ingest_bytes += nbytes
        if failed:
            self.ingest_errors += batches
        self.write_latency.observe(seconds)

    def snapshot(self, *, connections_open: int, topics: int, fsyncs: int) -> ServerMetrics:
        """The counters now, with the gauges the caller knows."""
        return ServerMetrics(
            connections_accepted=self.connections_accepted,
            connections_open=connections_open,
            control_requests=self.control_requests,
            ingest_batches=self.ingest_batches,
            ingest_bytes=self.ingest_bytes,
            ingest_errors=self.ingest_errors,
            fetches=self.fetches,
            fetch_bytes=self.fetch_bytes,
            topics=topics,
            fsyncs=fsyncs,
            uptime_s=time.monotonic() - self.created_at,
            write_latency=self.write_latency.snapshot(),
        )


Response = tuple[int, str, str]
"""(status, content type, body)."""

_JSON: Final = "application/json"
_PROMETHEUS: Final = "text/plain; version=0.0.4; charset=utf-8"
_REASONS: Final = {200: "OK", 400: "Bad Request", 404: "Not Found", 503: "Service Unavailable"}


class ObservabilityEndpoints:
    """The metrics and health HTTP listeners of one server.

    Args:
        stats: The server's counters (for readiness).
        metrics: Returns a fresh snapshot.
        running: Whether the LWP listener is up (startup complete).
    """

    def __init__(
        self,
        stats: ServerStats,
        metrics: Callable[[], ServerMetrics],
        running: Callable[[], bool],
    ) -> None:
        self._stats = stats
        self._metrics = metrics
        self._running = running
        self._listeners: list[asyncio.Server] = []
        self.metrics_address: str | None = None
        self.health_address: str | None = None

    async def start(self, metrics_addr: str | None, health_addr: str | None) -> None:
        """Listen on the given `host:port` addresses (None: that endpoint is off).

        Raises:
            OSError: A port cannot be bound (nothing is left listening).
        """
        try:
            if metrics_addr is not None:
                self.metrics_address = await self._listen(metrics_addr, self._route_metrics)
            if health_addr is not None:
                self.health_address = await self._listen(health_addr, self._route_health)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close the listeners (requests in progress finish)."""
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.close()
        for listener in listeners:
            await listener.wait_closed()
        self.metrics_address = self.health_address = None

    async def _listen(self, address: str, route: Callable[[str, str], Response]) -> str:
        host, _, port_text = address.rpartition(":")
        host = host.strip("[]")
        if not host or not port_text.isdigit():
            raise ValueError(f"{address!r} is not host:port")

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _serve_one(reader, writer, route)

        listener = await asyncio.start_server(serve, host, int(port_text), limit=_REQUEST_LIMIT)
        self._listeners.append(listener)
        port = listener.sockets[0].getsockname()[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _route_metrics(self, method: str, path: str) -> Response:
        if method == "GET" and path in ("/metrics", "/"):
            return 200, _PROMETHEUS, prometheus_text(self._metrics(), "lnc_server")
        return 404, _JSON, '{"error":"not_found"}'

    def _route_health(self, method: str, path: str) -> Response:
        started = self._running()
        ready = started and self._stats.ready
        routes: dict[tuple[str, str], Response] = {
            ("GET", "/health/live"): (200, _JSON, '{"status":"alive"}'),
            ("GET", "/health/ready"): _readiness(ready),
            ("GET", "/health/startup"): (
                (200, _JSON, '{"status":"started"}')
                if started
                else (503, _JSON, '{"status":"starting"}')
            ),
            ("GET", "/health"): (
                200 if ready else 503,
                _JSON,
                json.dumps(
                    {
                        "alive": True,
                        "ready": ready,
                        "data_plane_ready": ready,
                        "coordinator_ready": True,
                        "startup_complete": started,
                    },
                    separators=(",", ":"),
                ),
            ),
            ("GET", "/metrics"): (
                200,
                _JSON,
                '{"status":"metrics_exported","note":"Use metrics_addr port for Prometheus '
                'scraping"}',
            ),
            ("GET", "/admin/info"): (
                200,
                _JSON,
                json.dumps(
                    {
                        "version": _version(),
                        "build": "lnc-client",
                        "uptime_secs": int(time.monotonic() - self._stats.created_at),
                    },
                    separators=(",", ":"),
                ),
            ),
        }
        if (method, path) == ("POST", "/admin/ready"):
            self._stats.ready = True
            return 200, _JSON, '{"status":"ready","action":"enabled"}'
        if (method, path) == ("DELETE", "/admin/ready"):
            self._stats.ready = False
            return 200, _JSON, '{"status":"not_ready","action":"disabled"}'
        return routes.get((method, path), (404, _JSON, '{"error":"not_found"}'))


def _readiness(ready: bool) -> Response:
    if ready:
        body = '{"status":"ready","data_plane_ready":true,"coordinator_ready":true}'
        return 200, _JSON, body
    body = '{"status":"not_ready","data_plane_ready":false,"coordinator_ready":true}'
    return 503, _JSON, body


async def _serve_one(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    route: Callable[[str, str], Response],
) -> None:
    """Read one request (bounded in size and time), answer it, close the connection."""
    try:
        await _answer(reader, writer, route)
    finally:
        writer.close()  # also when `route` failed unexpectedly


async def _answer(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    route: Callable[[str, str], Response],
) -> None:
    try:
        async with asyncio.timeout(_REQUEST_TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, target, _version = request_line.split(" ", 2)
        status, content_type, body = route(method, target.split("?", 1)[0])
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        status, content_type, body = 400, _JSON, '{"error":"bad_request"}'
    except OSError:
        return
    payload = body.encode()
    writer.write(
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + payload
    )
    with contextlib.suppress(OSError):
        await writer.drain()
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
