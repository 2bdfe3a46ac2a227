"""Fixtures for the server tests: a running LanceServer and a raw-bytes client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lnc_client.protocol.frame import HEADER_SIZE, build_control_frame
from lnc_client.server import LanceServer

VECTORS_PATH = Path(__file__).resolve().parents[1] / "data" / "vectors.json"
_LENGTH = struct.Struct("<I")
TIMEOUT = 5.0


def load_vectors() -> dict[str, bytes]:
    data = json.loads(VECTORS_PATH.read_text())
    frames = {f["name"]: bytes.fromhex(f["hex"]) for f in data["frames"]}
    frames |= {f["name"]: bytes.fromhex(f["hex"]) for f in data["negative"]}
    return frames


VECTORS = load_vectors()


class RawConn:
    """A raw TCP connection speaking bytes, with timeouts on every read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> RawConn:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
        return cls(reader, writer)

    async def send(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.writer.write(chunk)
        await self.writer.drain()

    async def read_frame(self) -> bytes:
        """Read one whole response frame (header + payload) as bytes."""
        header = await asyncio.wait_for(self.reader.readexactly(HEADER_SIZE), TIMEOUT)
        (length,) = _LENGTH.unpack_from(header, 32)
        payload = await asyncio.wait_for(self.reader.readexactly(length), TIMEOUT)
        return header + payload

    async def ask(self, command: int, payload: bytes = b"") -> bytes:
        """Send one control frame and return the next frame (its reply)."""
        await self.send(build_control_frame(command, payload))
        return await self.read_frame()

    async def read_frames(self, count: int) -> list[bytes]:
        return [await self.read_frame() for _ in range(count)]

    async def expect_closed(self) -> bytes:
        """Return whatever arrives until EOF (fails if the peer keeps the connection open)."""
        return await asyncio.wait_for(self.reader.read(), TIMEOUT)

    async def expect_silence(self, seconds: float = 0.2) -> None:
        """Nothing arrives and the connection stays open for `seconds`."""
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.reader.read(1), seconds)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@pytest.fixture
def vectors() -> dict[str, bytes]:
    return dict(VECTORS)


@pytest.fixture
def connect() -> object:
    """`await connect(port)` opens a `RawConn`."""
    return RawConn.open


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LanceServer]:
    async with LanceServer(tmp_path / "data", port=0) as running:
        yield running


@pytest.fixture
async def conn(server: LanceServer) -> AsyncIterator[RawConn]:
    raw = await RawConn.open(server.port)
    yield raw
    await raw.close()
