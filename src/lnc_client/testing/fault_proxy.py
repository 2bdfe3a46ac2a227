"""`FaultProxy`: a TCP proxy on 127.0.0.1 that breaks the network in controlled ways.

Put it between a client and a server (`async with FaultProxy("127.0.0.1:1992") as proxy:`, then
connect the client to `proxy.address`) and set faults per direction at any time:
`proxy.upstream` (client to server) and `proxy.downstream` (server to client) are `LinkFaults`
values; assigning a new one applies to the bytes read from then on.

Data flow of one direction of one connection: a *reader* task reads chunks from the source
socket (not while the direction is `stalled`: the peer then sees a reader that stopped, and its
send buffer fills), flips bits (`flip_probability`), cuts the connection after
`cut_after_bytes`, and queues each chunk with its due time (`latency_s` after it was read). A
*writer* task takes the chunks in order, waits until each is due, merges chunks that are already
due (`coalesce`), cuts them at random points (`split`) and writes the pieces one by one, pacing
them to `bandwidth_bps`. The sockets have TCP_NODELAY, so split pieces leave as separate
segments.

Besides the per-direction faults: `cut()` resets every connection now, `half_close()` sends
FIN to the clients (or the server) while the other direction keeps flowing, and `refuse`
makes new connections close at once, as a server that is down would. Randomness comes from one
`random.Random(seed)`, so a run can be repeated. `stats` counts what happened.

The module uses only the standard library and asyncio; it knows nothing of the Lance protocol,
so it works in front of any TCP server.
"""

from __future__ import annotations

import asyncio
import math
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import Enum
from types import TracebackType
from typing import Final, Self

__all__ = ["Direction", "FaultProxy", "LinkFaults", "ProxyStats"]

_READ_SIZE: Final = 64 * 1024
_COALESCE_WINDOW_S: Final = 0.002
_CLOSE_TIMEOUT_S: Final = 5.0


class Direction(Enum):
    """A direction of the proxied byte streams."""

    UPSTREAM = "upstream"
    """Client to server."""
    DOWNSTREAM = "downstream"
    """Server to client."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkFaults:
    """The faults of one direction; all off by default.

    Attributes:
        latency_s: Each chunk is delivered this long after it was read (order kept, pipelined).
        bandwidth_bps: Bytes per second at most, per connection (0: unlimited).
        cut_after_bytes: After this many bytes of the connection in this direction, forward
            only up to that count, then reset both sides (None: never).
        split: Cut each chunk into pieces at random points, written one by one.
        coalesce: Merge chunks that are due together (waiting a couple of milliseconds for
            more) before writing, so the receiver sees boundaries the sender never made.
        flip_probability: Each byte has one random bit flipped with this probability.
        stalled: Stop reading from the source: the sender sees a peer that does not read.
    """

    latency_s: float = 0.0
    bandwidth_bps: int = 0
    cut_after_bytes: int | None = None
    split: bool = False
    coalesce: bool = False
    flip_probability: float = 0.0
    stalled: bool = False

    def __post_init__(self) -> None:
        """Check ranges."""
        if self.latency_s < 0 or self.bandwidth_bps < 0:
            raise ValueError("latency_s and bandwidth_bps must be >= 0")
        if self.cut_after_bytes is not None and self.cut_after_bytes < 0:
            raise ValueError("cut_after_bytes must be >= 0")
        if not 0.0 <= self.flip_probability <= 1.0:
            raise ValueError("flip_probability must be in 0..1")


@dataclass(slots=True)
class ProxyStats:
    """What the proxy did so far.

    Attributes:
        connections: Client connections accepted (refused ones included).
        refused: Connections closed at once because `refuse` was set.
        bytes: Bytes forwarded, per direction.
        flipped_bits: Bits flipped, per direction.
        cuts: Connections reset by `cut_after_bytes` or `cut()`.
    """

    connections: int = 0
    refused: int = 0
    bytes: dict[Direction, int] = field(default_factory=lambda: dict.fromkeys(Direction, 0))
    flipped_bits: dict[Direction, int] = field(default_factory=lambda: dict.fromkeys(Direction, 0))
    cuts: int = 0


class _Link:
    """One proxied connection: two sockets and four tasks."""

    __slots__ = ("client", "forwarded", "server", "tasks")

    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> None:
        self.client = client
        self.server = server
        self.forwarded = dict.fromkeys(Direction, 0)
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        self.client.transport.abort()
        self.server.transport.abort()


class FaultProxy:
    """A fault-injecting TCP proxy in front of one server, listening on 127.0.0.1.

    Args:
        target: The server, `host:port`.
        port: Port to listen on (0: any free one; see `address`).
        seed: Seed of the random choices (split points, flipped bits).
    """

    def __init__(self, target: str, *, port: int = 0, seed: int | None = None) -> None:
        host, _, target_port = target.rpartition(":")
        self._target = (host.strip("[]") or "127.0.0.1", int(target_port))
        self._port = port
        self._random = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._faults = dict.fromkeys(Direction, LinkFaults())
        self._flowing = {direction: asyncio.Event() for direction in Direction}
        for event in self._flowing.values():
            event.set()
        self.refuse = False
        self.stats = ProxyStats()

    @property
    def address(self) -> str:
        """`127.0.0.1:PORT` of the proxy: connect clients here."""
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    @property
    def connection_count(self) -> int:
        """Connections currently proxied."""
        return len(self._links)

    @property
    def upstream(self) -> LinkFaults:
        """Faults of the client-to-server direction; assign to change them."""
        return self._faults[Direction.UPSTREAM]

    @upstream.setter
    def upstream(self, value: LinkFaults) -> None:
        self._set(Direction.UPSTREAM, value)

    @property
    def downstream(self) -> LinkFaults:
        """Faults of the server-to-client direction; assign to change them."""
        return self._faults[Direction.DOWNSTREAM]

    @downstream.setter
    def downstream(self, value: LinkFaults) -> None:
        self._set(Direction.DOWNSTREAM, value)

    def faults(self, direction: Direction) -> LinkFaults:
        """The current faults of `direction`."""
        return self._faults[direction]

    def set_faults(self, direction: Direction, **changes: object) -> None:
        """Change some fault fields of `direction` (`dataclasses.replace`)."""
        value = replace(self._faults[direction], **changes)  # type: ignore[arg-type]  # fields checked by LinkFaults
        self._set(direction, value)

    def _set(self, direction: Direction, value: LinkFaults) -> None:
        self._faults[direction] = value
        if value.stalled:
            self._flowing[direction].clear()
        else:
            self._flowing[direction].set()

    def heal(self) -> None:
        """Turn every fault off (open connections stay as they are)."""
        for direction in Direction:
            self._set(direction, LinkFaults())
        self.refuse = False

    async def start(self) -> Self:
        """Listen on 127.0.0.1."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._port)
        return self

    async def stop(self) -> None:
        """Stop listening and reset every connection; waits for the proxy's tasks to end."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for event in self._flowing.values():
            event.set()  # stalled readers must see their reset sockets
        self.cut()
        handlers = list(self._handlers)
        if handlers:
            _done, pending = await asyncio.wait(handlers, timeout=_CLOSE_TIMEOUT_S)
            for task in pending:
                task.cancel()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def cut(self) -> int:
        """Reset every proxied connection now (both sides see a reset); returns how many."""
        links = list(self._links)
        for link in links:
            link.abort()
        self.stats.cuts += len(links)
        return len(links)

    def half_close(self, direction: Direction = Direction.DOWNSTREAM) -> None:
        """Send FIN in `direction` on every connection; the other direction keeps flowing.

        DOWNSTREAM (the default): the clients get EOF; UPSTREAM: the server does.
        """
        for link in self._links:
            writer = link.client if direction is Direction.DOWNSTREAM else link.server
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()

    # --- connections ----------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        if self.refuse:
            self.stats.refused += 1
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._proxy(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        for stream in (writer, up_writer):
            sock = stream.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(writer, up_writer)
        self._links.add(link)
        loop = asyncio.get_running_loop()
        for direction, source, sink in (
            (Direction.UPSTREAM, reader, up_writer),
            (Direction.DOWNSTREAM, up_reader, writer),
        ):
            queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
            link.tasks.append(loop.create_task(self._read(link, direction, source, queue)))
            link.tasks.append(loop.create_task(self._write(link, direction, sink, queue)))
        try:
            await asyncio.gather(*link.tasks)
        except (ConnectionError, OSError):
            link.abort()
        finally:
            for task in link.tasks:
                task.cancel()
            await asyncio.gather(*link.tasks, return_exceptions=True)
            self._links.discard(link)
            link.abort()

    async def _read(
        self,
        link: _Link,
        direction: Direction,
        source: asyncio.StreamReader,
        queue: asyncio.Queue[tuple[float, bytes] | None],
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._flowing[direction].wait()
            data = await source.read(_READ_SIZE)
            if not data:
                await queue.put(None)  # EOF: forwarded as a half-close once the queue drains
                return
            faults = self.faults(direction)
            if faults.flip_probability:
                data = self._flip(data, faults.flip_probability, direction)
            limit = faults.cut_after_bytes
            cut = limit is not None and link.forwarded[direction] + len(data) >= limit
            if cut:
                assert limit is not None
                data = data[: max(0, limit - link.forwarded[direction])]
            link.forwarded[direction] += len(data)
            await queue.put((loop.time() + faults.latency_s, data))
            if cut:
                await queue.put(None)
                return

    async def _write(
        self,
        link: _Link,
        direction: Direction,
        sink: asyncio.StreamWriter,
        queue: asyncio.Queue[tuple[float, bytes] | None],
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await queue.get()
            if item is None:
                self._finish(link, direction, sink)
                return
            due, data = item
            await asyncio.sleep(max(0.0, due - loop.time()))
            faults = self.faults(direction)
            end = False
            if faults.coalesce:
                data, end = await self._gather(data, queue)
            for piece in self._pieces(data, split=faults.split, rate=faults.bandwidth_bps):
                if faults.bandwidth_bps:
                    await asyncio.sleep(len(piece) / faults.bandwidth_bps)
                if sink.is_closing():
                    raise ConnectionResetError("the proxied connection is closed")
                sink.write(piece)
                await sink.drain()
                self.stats.bytes[direction] += len(piece)
                if faults.split:
                    await asyncio.sleep(0)
            if end:
                self._finish(link, direction, sink)
                return

    def _finish(self, link: _Link, direction: Direction, sink: asyncio.StreamWriter) -> None:
        """The source ended: half-close toward the sink, or reset after `cut_after_bytes`."""
        limit = self.faults(direction).cut_after_bytes
        if limit is not None and link.forwarded[direction] >= limit:
            self.stats.cuts += 1
            link.abort()
        elif sink.can_write_eof() and not sink.is_closing():
            sink.write_eof()

    async def _gather(
        self, data: bytes, queue: asyncio.Queue[tuple[float, bytes] | None]
    ) -> tuple[bytes, bool]:
        """Merge `data` with the chunks that are due within a short window; True at EOF."""
        await asyncio.sleep(_COALESCE_WINDOW_S)
        loop = asyncio.get_running_loop()
        parts = [data]
        while not queue.empty():
            item = queue.get_nowait()
            if item is None:
                return b"".join(parts), True
            due, more = item
            await asyncio.sleep(max(0.0, due - loop.time()))
            parts.append(more)
        return b"".join(parts), False

    def _pieces(self, data: bytes, *, split: bool, rate: int) -> Iterator[bytes]:
        """`data` cut at up to 8 random points (`split`) and into 10 ms pieces at `rate`."""
        cuts: list[int] = []
        if split and len(data) > 1:
            cuts = self._random.sample(range(1, len(data)), min(len(data) - 1, 8))
        if rate:
            cuts += range(max(1, rate // 100), len(data), max(1, rate // 100))
        start = 0
        for point in [*sorted(set(cuts)), len(data)]:
            yield data[start:point]
            start = point

    def _flip(self, data: bytes, probability: float, direction: Direction) -> bytes:
        """Flip one random bit of each byte chosen with `probability` (geometric skips)."""
        out = bytearray(data)
        rng = self._random
        position = -1
        flipped = 0
        log_keep = math.log1p(-probability) if probability < 1.0 else None
        while True:
            if log_keep is None:
                position += 1
            else:
                position += 1 + int(math.log(1.0 - rng.random()) / log_keep)
            if position >= len(out):
                break
            out[position] ^= 1 << rng.randrange(8)
            flipped += 1
        self.stats.flipped_bits[direction] += flipped
        return bytes(out)
