"""`LwpConnection`: lnc-client 0.2.9's raw frame connection, kept for code built on it.

It is a plain TCP (or TLS) stream of frames: `send_frame(bytes)` writes, `recv_frame()` returns
the next `(LwpHeader, payload)`; pairing replies with requests is the caller's job. The
producer, consumer and admin client use `lnc_client.Connection` instead, which matches every
reply to its request. Exported as `lnc_client.connection.LwpConnection` and `connect`.

Data flow: bytes read from the socket go into a `FrameDecoder` (header and payload CRCs are
checked there); complete frames queue up and `recv_frame` hands them out. Keepalive frames are
answered and Backpressure frames noted (`under_backpressure`), as in 0.2.9; a keepalive is also
sent every `keepalive_interval_s`. Unlike 0.2.9, a `recv_frame` that times out (or is
cancelled) never loses the bytes it had read: the frame is returned whole by the next call.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Awaitable
from typing import Self, TypeVar

from lnc_client.config import ReconnectConfig
from lnc_client.errors import ConnectionError, TimeoutError
from lnc_client.protocol.frame import (
    DEFAULT_PORT,
    KEEPALIVE_FRAME,
    Frame,
    FrameDecoder,
    FrameType,
    LwpHeader,
)

__all__ = ["LwpConnection", "connect"]

_log = logging.getLogger("lnc_client.connection")

_READ_SIZE = 256 * 1024
T = TypeVar("T")


class LwpConnection:
    """A raw LWP frame stream (lnc-client 0.2.9's low-level connection).

    Args:
        host: Server host.
        port: Server port.
        keepalive_interval_s: A keepalive is sent this often while connected.
        connect_timeout_s: Bound on the TCP (and TLS) connect.
        ssl_context: TLS context, or None for plain TCP.
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        keepalive_interval_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._host, self._port = host, port
        self._keepalive_interval = keepalive_interval_s
        self._connect_timeout = connect_timeout_s
        self._ssl = ssl_context
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._decoder = FrameDecoder()
        self._frames: deque[Frame] = deque()
        self._write_lock = asyncio.Lock()
        self._backpressure = False

    @property
    def connected(self) -> bool:
        """Whether the stream is open."""
        return self._writer is not None

    @property
    def under_backpressure(self) -> bool:
        """Whether a Backpressure frame arrived and no Ack since."""
        return self._backpressure

    async def connect(self) -> Self:
        """Open the stream and start the keepalive timer.

        Raises:
            TimeoutError: Not connected within `connect_timeout_s`.
            ConnectionError: The server could not be reached.
        """
        where = f"{self._host}:{self._port}"
        try:
            async with asyncio.timeout(self._connect_timeout):
                self._reader, self._writer = await asyncio.open_connection(
                    self._host, self._port, ssl=self._ssl
                )
        except builtins.TimeoutError as error:
            raise TimeoutError(
                f"connecting to {where} took over {self._connect_timeout} s"
            ) from error
        except OSError as error:
            raise ConnectionError(f"cannot connect to {where}: {error}") from error
        self._decoder, self._frames, self._backpressure = FrameDecoder(), deque(), False
        self._keepalive = asyncio.create_task(self._keep_alive(), name="lnc-lwp-keepalive")
        _log.info("connected to %s", where)
        return self

    async def close(self) -> None:
        """Stop the keepalive timer and close the stream (idempotent)."""
        keepalive, self._keepalive = self._keepalive, None
        if keepalive is not None:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def reconnect(self, config: ReconnectConfig | None = None) -> None:
        """Close, then connect again with exponential backoff and jitter.

        Raises:
            ConnectionError: `config.max_attempts` attempts failed.
        """
        policy = config or ReconnectConfig()
        await self.close()
        attempt = 0
        while True:
            await asyncio.sleep(policy.delay_for_attempt(attempt))
            attempt += 1
            try:
                await self.connect()
            except (ConnectionError, TimeoutError) as error:
                _log.warning("reconnect attempt %d failed: %s", attempt, error)
                if policy.max_attempts and attempt >= policy.max_attempts:
                    raise ConnectionError(f"no reconnect after {attempt} attempts") from error
            else:
                return

    async def send_frame(self, frame: bytes) -> None:
        """Write one encoded frame (header and payload).

        Raises:
            ConnectionError: Not connected, or the write failed.
        """
        writer = self._writer
        if writer is None:
            raise ConnectionError("not connected")
        async with self._write_lock:
            try:
                writer.write(frame)
                await writer.drain()
            except OSError as error:
                raise ConnectionError(f"send failed: {error}") from error

    async def recv_frame(self, timeout: float | None = None) -> tuple[LwpHeader, bytes]:
        """Return the next frame other than Keepalive or Backpressure.

        Raises:
            TimeoutError: No complete frame within `timeout` seconds (nothing is lost).
            ConnectionError: The stream ended or failed.
            InvalidFrameError: A frame failed validation; the stream cannot be trusted.
        """
        return await _within(timeout, self._next_reply())

    async def recv_header(self, timeout: float | None = None) -> LwpHeader:
        """Return the header of the next frame; its payload stays for `recv_payload`."""
        header, payload = await self.recv_frame(timeout)
        self._frames.appendleft(Frame(header, payload))
        return header

    async def recv_payload(self, header: LwpHeader, timeout: float | None = None) -> bytes:
        """Return the payload of the frame whose header `recv_header` returned.

        Raises:
            ValueError: The next frame is not the one `recv_header` returned.
            TimeoutError: No frame was held and none came within `timeout` seconds.
        """
        if self._frames:
            frame = self._frames.popleft()
        else:
            frame = await _within(timeout, self._next_frame())
        if frame.header != header:
            self._frames.appendleft(frame)
            raise ValueError("recv_payload() takes the header the last recv_header() returned")
        return bytes(frame.payload)

    async def _next_reply(self) -> tuple[LwpHeader, bytes]:
        while True:
            frame = await self._next_frame()
            kind = frame.frame_type
            if kind is FrameType.KEEPALIVE:
                await self.send_frame(KEEPALIVE_FRAME)
            elif kind is FrameType.BACKPRESSURE:
                self._backpressure = True
            else:
                if kind is FrameType.ACK:
                    self._backpressure = False
                return frame.header, bytes(frame.payload)

    async def _next_frame(self) -> Frame:
        while not self._frames:
            reader = self._reader
            if reader is None:
                raise ConnectionError("not connected")
            try:
                chunk = await reader.read(_READ_SIZE)
            except OSError as error:
                raise ConnectionError(f"read failed: {error}") from error
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self._frames.extend(self._decoder.feed(chunk))
        return self._frames.popleft()

    async def _keep_alive(self) -> None:
        if self._keepalive_interval <= 0:
            return
        with contextlib.suppress(ConnectionError):
            while True:
                await asyncio.sleep(self._keepalive_interval)
                await self.send_frame(KEEPALIVE_FRAME)


async def _within(timeout: float | None, waiting: Awaitable[T]) -> T:
    """Await `waiting` for at most `timeout` seconds (None: no limit); frames read stay held."""
    try:
        async with asyncio.timeout(timeout):
            return await waiting
    except builtins.TimeoutError as error:
        raise TimeoutError(f"no frame within {timeout} s") from error


async def connect(
    host: str,
    port: int = DEFAULT_PORT,
    *,
    keepalive_interval_s: float = 10.0,
    connect_timeout_s: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
) -> LwpConnection:
    """Create an `LwpConnection` and connect it (lnc-client 0.2.9's helper)."""
    conn = LwpConnection(
        host,
        port,
        keepalive_interval_s=keepalive_interval_s,
        connect_timeout_s=connect_timeout_s,
        ssl_context=ssl_context,
    )
    return await conn.connect()
