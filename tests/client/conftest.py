"""Shared fixtures for the client tests, and the server they run against.

One suite, two servers: `start_server()` starts the embedded `lnc serve` (`LanceServer`) or, when
LNC_TEST_LANCE_BIN names a real `lance` binary, the real Lance server (`RealServer`, see
tests/real_lance.py) on a fresh data directory with every port on 127.0.0.1 and ephemeral. Tests
that need what only our server has (fault switches, auth tokens, counters) carry
`@pytest.mark.ours_only(reason)` and skip with that reason against the real one; touching
`RealServer.faults` skips too, so a test that forgot the marker cannot pass by accident.

`TcpProxy` sits between a client and the embedded server on 127.0.0.1 and injects the faults the
server cannot: answers delayed by a fixed time (a slow network or a slow server, order kept),
connections cut at once in both directions, and frames the server never sends (e.g. unsolicited
keepalives). It also counts the frames clients send, by type. The `proxy` fixture starts one in
front of any address and stops it after the test. (`wait_for`, which polls a condition instead
of sleeping for a guessed time, is in tests/helpers.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from lnc_client import operations
from lnc_client.connection import Connection
from lnc_client.errors import InvalidFrameError
from lnc_client.protocol.frame import FrameDecoder, FrameType
from lnc_client.server import FaultConfig, LanceServer
from lnc_client.tls_probe import is_tls_record

from ..real_lance import RealNode, lance_bin

REAL_BIN = lance_bin()
"""The real `lance` binary the client tests run against, or None for the embedded server."""


class TcpProxy:
    """A TCP forwarder with a settable server-to-client delay and a `cut()` switch.

    Attributes:
        delay_s: Each chunk from the server is written to the client this long after it was
            read (order kept). Changeable at any time; it applies to chunks read afterwards.
        connections: How many client connections were accepted so far.
        tls_probes: How many of them opened with a TLS record: the client asking whether the
            port speaks TLS after a silent close (`lnc_client.tls_probe`).
        client_frames: Frames received from clients so far, counted by type (until a client
            sends bytes that are not frames).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._client_writers: set[asyncio.StreamWriter] = set()
        self.client_frames: Counter[FrameType] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self.delay_s = 0.0
        self.connections = 0
        self.tls_probes = 0

    @property
    def address(self) -> str:
        """`127.0.0.1:PORT` of the proxy."""
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        self._client_writers.add(writer)
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer, delayed=False)),
            asyncio.ensure_future(self._pump(up_reader, writer, delayed=True)),
        ]
        self._tasks.update(pumps)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        self._tasks.difference_update(pumps)
        for each in (writer, up_writer):
            each.transport.abort()
            self._writers.discard(each)
        self._client_writers.discard(writer)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, delayed: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(chunk)

        sender = asyncio.ensure_future(deliver())
        decoder = None if delayed else FrameDecoder()
        first = not delayed
        try:
            while chunk := await reader.read(65536):
                if first and is_tls_record(chunk):
                    self.tls_probes += 1
                first = False
                if decoder is not None:
                    decoder = self._count(decoder, chunk)
                queue.put_nowait((loop.time() + (self.delay_s if delayed else 0.0), chunk))
            while not queue.empty():
                await asyncio.sleep(0.005)
        except OSError:
            return
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    def _count(self, decoder: FrameDecoder, chunk: bytes) -> FrameDecoder | None:
        try:
            frames = decoder.feed(chunk)
        except InvalidFrameError:
            return None
        self.client_frames.update(frame.frame_type for frame in frames)
        return decoder

    def send_to_clients(self, data: bytes) -> None:
        """Write `data` to every connected client, as if the server had sent it."""
        for writer in self._client_writers:
            writer.write(data)

    def cut(self) -> None:
        """Reset every open connection (both sides) at once; new ones are still accepted."""
        for writer in list(self._writers):
            writer.transport.abort()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def proxy() -> AsyncIterator[Callable[[str], Awaitable[TcpProxy]]]:
    """A factory: `await proxy("127.0.0.1:PORT")` starts a `TcpProxy` in front of that address."""
    started: list[TcpProxy] = []

    async def start(address: str) -> TcpProxy:
        host, _, port = address.rpartition(":")
        instance = await TcpProxy(host, int(port)).start()
        started.append(instance)
        return instance

    yield start
    for instance in started:
        with contextlib.suppress(OSError):
            await instance.stop()


class RealServer:
    """The real Lance server behind the small part of `LanceServer`'s API the client tests use.

    It is one `lance` process (`RealNode`) on a fresh data directory; `restart()` stops it
    (SIGTERM, then SIGKILL after a grace period) and starts it again on the same directory and
    ports. Fault switches do not exist there: reading or setting `faults` skips the test.
    """

    kind = "real"

    def __init__(self, node: RealNode) -> None:
        self.node = node

    @property
    def address(self) -> str:
        return self.node.address

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self.node.ports.client

    @property
    def data_dir(self) -> Path:
        return self.node.data_dir

    @property
    def faults(self) -> FaultConfig:
        pytest.skip("needs lnc serve's fault switches (the real server has none)")

    @faults.setter
    def faults(self, value: FaultConfig) -> None:
        pytest.skip("needs lnc serve's fault switches (the real server has none)")

    async def start(self) -> None:
        await asyncio.to_thread(self.node.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self.node.stop)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> RealServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()


ServerUnderTest = LanceServer | RealServer
"""What a client test talks to: the embedded server or the real one (same attributes used)."""


def start_server(data_dir: Path, **options: object) -> ServerUnderTest:
    """An unstarted server on `data_dir` (use `async with`): the real one if REAL_BIN is set.

    `options` are `LanceServer` keywords; `shutdown_grace_secs` is the only one the real server
    takes as given (its own drain applies), any other skips the test against it.
    """
    if REAL_BIN is None:
        return LanceServer(data_dir, port=0, **options)  # type: ignore[arg-type]
    unsupported = set(options) - {"shutdown_grace_secs"}
    if unsupported:
        pytest.skip(f"needs lnc serve options {sorted(unsupported)} (not the real server's)")
    return RealServer(RealNode(REAL_BIN, data_dir))


@pytest.fixture
async def events_server(tmp_path: Path) -> AsyncIterator[ServerUnderTest]:
    """A server on an ephemeral port with one topic, id 1, named 'events'."""
    async with start_server(tmp_path / "data") as running:
        conn = await Connection.open(running.address)
        try:
            topic = await operations.create_topic(conn, "events")
        finally:
            await conn.close()
        assert topic.id == 1
        yield running
