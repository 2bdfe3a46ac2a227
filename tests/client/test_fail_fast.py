"""Permanent errors fail fast with their cause (issue 9.9); transient ones keep their cause."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from pathlib import Path

import pytest

from lnc_client import LanceClient, Producer
from lnc_client.config import ClientConfig, ConnectionOptions, StandaloneConfig
from lnc_client.connection import Connection
from lnc_client.consumer import StandaloneConsumer
from lnc_client.errors import ConnectionError, PermanentConnectionError, TimeoutError
from lnc_client.server import LanceServer, TlsConfig

from .test_reconnect import refused_address
from .test_tls import SERVER_NAME, make_ca_and_server_cert


def slow_config(address: str) -> ClientConfig:
    host, _, port = address.rpartition(":")
    return ClientConfig(host=host, port=int(port), request_timeout_s=30.0, connect_timeout_s=30.0)


@pytest.mark.parametrize("address", ["lance://host:1", "a host:1", "host/x:1", "[::1"])
def test_a_malformed_address_is_refused_before_anything_is_sent(address: str) -> None:
    with pytest.raises(ValueError, match="address"):
        Producer(address)


async def within(seconds: float, coroutine: object) -> None:
    async with asyncio.timeout(seconds):
        await coroutine  # type: ignore[misc]


async def test_a_name_that_does_not_resolve_fails_at_once() -> None:
    config = slow_config("no-such-host.invalid:1992")
    client = LanceClient(config)
    with pytest.raises(PermanentConnectionError, match="does not resolve"):
        await within(5.0, client.connect())  # not retried for 30 s
    await client.close()


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    return make_ca_and_server_cert(tmp_path)


@pytest.mark.ours_only("starts lnc serve with and without TLS")
async def test_tls_against_a_plaintext_port_is_named_and_not_retried(
    tmp_path: Path, tls_files: tuple[Path, Path, Path]
) -> None:
    ca_cert, _cert, _key = tls_files
    context = ssl.create_default_context(cafile=ca_cert)
    async with LanceServer(tmp_path / "plain", port=0) as server:
        config = slow_config(server.address).with_ssl(context, server_hostname=SERVER_NAME)
        client = LanceClient(config)
        with pytest.raises(PermanentConnectionError, match="does not speak TLS"):
            await within(5.0, client.connect())
        await client.close()


@pytest.mark.ours_only("starts lnc serve with TLS")
async def test_plaintext_against_a_tls_port_is_named(
    tmp_path: Path, tls_files: tuple[Path, Path, Path]
) -> None:
    _ca, cert, key = tls_files
    tls = TlsConfig(enabled=True, cert_path=cert, key_path=key)
    async with LanceServer(tmp_path / "tls", port=0, tls=tls) as server:
        conn = await Connection.open(server.address, ConnectionOptions(request_timeout_s=5.0))
        with pytest.raises(ConnectionError, match="speaks TLS"):
            await conn.request(0x02)  # ListTopics: the TLS server hangs up on it
        await conn.close()


async def test_a_consumer_connect_timeout_keeps_its_cause() -> None:
    config = StandaloneConfig(topic_id=1, connect_timeout_s=0.5)
    consumer = StandaloneConsumer(refused_address(), config)
    with pytest.raises(TimeoutError, match="last connect error: cannot connect") as caught:
        await consumer.start()
    assert isinstance(caught.value.__cause__, ConnectionError)
