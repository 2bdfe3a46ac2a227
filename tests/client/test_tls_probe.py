"""Plaintext against a TLS port fails fast; a silent proxy in front of a stopped server does not.

Issue 9.9. A TLS server hangs up on a plaintext client without a word, like a proxy whose
backend is down; the client tells them apart by asking the port with a TLS ClientHello
(`lnc_client.tls_probe`) and fails fast only when the port answers like TLS.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from lnc_client import LanceClient, Producer
from lnc_client.config import Address, ClientConfig, ProducerConfig, StandaloneConfig
from lnc_client.consumer import StandaloneConsumer
from lnc_client.errors import ConnectionError, LanceError, PermanentConnectionError
from lnc_client.protocol.frame import KEEPALIVE_FRAME
from lnc_client.server import LanceServer, TlsConfig
from lnc_client.tls_probe import client_hello, is_tls_record, speaks_lwp, speaks_tls

from .test_tls import make_ca_and_server_cert

TLS_ALERT = bytes.fromhex("15030300020228")
"""A TLS 1.2 fatal handshake_failure alert: what some TLS servers send to a plaintext peer."""


def test_a_client_hello_is_a_tls_handshake_record() -> None:
    hello = client_hello("lance.example")
    assert hello[:2] == b"\x16\x03"
    assert int.from_bytes(hello[3:5], "big") == len(hello) - 5  # one record, length exact
    assert b"lance.example" in hello  # SNI for a host name


@pytest.mark.parametrize(
    ("head", "tls"),
    [
        (TLS_ALERT, True),
        (bytes.fromhex("160303007a"), True),  # ServerHello record
        (b"\x16\x03", True),
        (b"LANC", False),  # an LWP frame
        (b"\x17\x03\x03", False),  # application data is never the first answer
        (b"\x16\x02", False),  # SSL 2 style version
        (b"\x15", False),  # too short to tell
        (b"", False),
        (b"HTTP/1.1 400", False),
    ],
)
def test_is_tls_record(head: bytes, tls: bool) -> None:
    assert is_tls_record(head) is tls


class FakePort:
    """A TCP port that reads what arrives and then answers `answer` and closes (or stays mute)."""

    def __init__(self, answer: bytes | None, *, close: bool = True) -> None:
        self.answer = answer
        self.close = close
        self.first_bytes: list[bytes] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            self.first_bytes.append(await reader.read(1))
            if self.answer is not None:
                writer.write(self.answer)
                await writer.drain()
            if not self.close:
                await asyncio.sleep(3600)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def __aenter__(self) -> Address:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return Address("127.0.0.1", port)

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()


@pytest.mark.parametrize(
    ("answer", "close", "expected"),
    [
        (TLS_ALERT, True, True),
        (b"", True, False),  # a proxy in front of a stopped server: closes, says nothing
        (b"LANC" + bytes(40), True, False),  # an LWP server
        (None, False, False),  # a peer that never answers: the probe times out
    ],
)
async def test_speaks_tls_only_on_a_tls_answer(
    answer: bytes | None, close: bool, expected: bool
) -> None:
    async with FakePort(answer, close=close) as address:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await speaks_tls(address, 0.3) is expected
        assert loop.time() - started < 1.0


async def test_speaks_tls_is_false_for_a_name_no_client_hello_can_carry() -> None:
    assert await speaks_tls(Address(".bad..name", 1), 0.5) is False


async def test_speaks_tls_is_false_on_a_refused_connect() -> None:
    async with FakePort(None) as address:
        pass  # closed: nobody listens on the port any more
    assert await speaks_tls(address, 1.0) is False


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[LanceServer]:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    _ca, cert, key = make_ca_and_server_cert(tmp_path)
    tls = TlsConfig(enabled=True, cert_path=cert, key_path=key)
    async with LanceServer(tmp_path / "data", port=0, tls=tls) as server:
        yield server


def slow(address: str) -> ClientConfig:
    """A client that would retry for 30 s: failing fast must not depend on a short timeout."""
    host, _, port = address.rpartition(":")
    return ClientConfig(host=host, port=int(port), request_timeout_s=30.0, connect_timeout_s=30.0)


async def fails_fast(action: Callable[[], Awaitable[object]]) -> PermanentConnectionError:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(PermanentConnectionError, match="speaks TLS") as caught:
        async with asyncio.timeout(5.0):
            await action()
    assert loop.time() - started < 2.0
    assert isinstance(caught.value.__cause__, ConnectionError)  # the silent close
    return caught.value


@pytest.mark.ours_only("starts lnc serve with TLS")
async def test_an_admin_call_in_plaintext_to_a_tls_port_fails_fast(
    tls_server: LanceServer,
) -> None:
    async with LanceClient(slow(tls_server.address)) as client:
        await fails_fast(client.list_topics)


@pytest.mark.ours_only("starts lnc serve with TLS")
async def test_a_token_in_plaintext_to_a_tls_port_fails_fast(tls_server: LanceServer) -> None:
    config = slow(tls_server.address)
    client = LanceClient(replace(config, auth_token="secret"))
    try:
        await fails_fast(client.connect)  # Authenticate is the first frame: lost in open
    finally:
        await client.close()


@pytest.mark.ours_only("starts lnc serve with TLS")
async def test_a_send_in_plaintext_to_a_tls_port_fails_fast(tls_server: LanceServer) -> None:
    config = ProducerConfig(delivery_timeout_s=30.0)
    producer = Producer(tls_server.address, config)
    try:
        await producer.start()  # TCP only: nothing has been sent yet
        await fails_fast(lambda: producer.send(1, b"x"))
    finally:
        await producer.close()


@pytest.mark.ours_only("starts lnc serve with TLS")
async def test_a_consumer_in_plaintext_to_a_tls_port_fails_fast(tls_server: LanceServer) -> None:
    config = StandaloneConfig(topic_id=1, connect_timeout_s=30.0, request_timeout_s=30.0)
    consumer = StandaloneConsumer(tls_server.address, config)
    try:
        await fails_fast(consumer.start)
    finally:
        await consumer.close()


async def test_a_silent_proxy_is_retried_and_asked_a_bounded_number_of_times() -> None:
    port = FakePort(b"")  # accepts, reads, closes: a proxy with no backend
    async with port as address:
        config = ClientConfig(
            host=address.host, port=address.port, request_timeout_s=1.5, connect_timeout_s=1.5
        )
        async with LanceClient(config) as client:
            with pytest.raises(ConnectionError) as caught:
                await client.list_topics()
    assert not isinstance(caught.value, PermanentConnectionError)
    assert caught.value.retryable
    probes = port.first_bytes.count(b"\x16")  # a ClientHello's first byte
    tries = len(port.first_bytes) - probes
    assert tries >= 4  # retried with backoff until the deadline
    assert 1 <= probes <= 3  # asked, but not on every retry


async def test_the_port_is_asked_three_times_at_most_across_calls() -> None:
    port = FakePort(b"")  # a silent proxy; the token makes each connect send a frame
    async with port as address:
        config = ClientConfig(
            host=address.host,
            port=address.port,
            request_timeout_s=0.5,
            connect_timeout_s=0.5,
            auth_token="t",
        )
        client = LanceClient(config)
        try:
            for _ in range(3):
                with pytest.raises(LanceError) as caught:
                    await client.list_topics()
                assert caught.value.retryable  # not refused as TLS, just unreachable
        finally:
            await client.close()
    assert 1 <= port.first_bytes.count(b"\x16") <= 3


async def test_speaks_lwp_only_where_a_keepalive_is_echoed(tmp_path: Path) -> None:
    async with LanceServer(tmp_path / "plain", port=0) as server:
        host, _, port = server.address.rpartition(":")
        assert await speaks_lwp(Address(host, int(port)), 1.0) is True
    for answer in (b"", TLS_ALERT, b"HTTP/1.1 400 Bad Request\r\n\r\n"):
        async with FakePort(answer) as address:
            assert await speaks_lwp(address, 0.3) is False


async def test_a_tls_handshake_closed_by_a_port_that_is_not_lwp_is_retried(
    tls_client_context: ssl.SSLContext,
) -> None:
    """A TLS balancer going down closes handshakes too: only an LWP answer makes it permanent."""
    port = FakePort(b"")  # reads the ClientHello, closes
    async with port as address:
        config = ClientConfig(
            host=address.host, port=address.port, request_timeout_s=1.0, connect_timeout_s=1.0
        ).with_ssl(tls_client_context, server_hostname="localhost")
        client = LanceClient(config)
        try:
            with pytest.raises(LanceError) as caught:
                await client.list_topics()
        finally:
            await client.close()
    assert caught.value.retryable
    assert not isinstance(caught.value, PermanentConnectionError)
    assert port.first_bytes.count(b"\x16") >= 2  # handshakes tried again
    assert 1 <= port.first_bytes.count(KEEPALIVE_FRAME[:1]) <= 3  # and the port asked


@pytest.fixture
def tls_client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
