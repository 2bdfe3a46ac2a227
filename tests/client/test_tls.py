"""The client over TLS (`ssl.SSLContext`, server name set by the caller) against the embedded
server's TLS listener, with a token that is sent again after every reconnect."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from lnc_client import (
    ClientConfig,
    LanceClient,
    Producer,
    ProducerConfig,
    StandaloneConfig,
    StandaloneConsumer,
)
from lnc_client.errors import ConnectionError
from lnc_client.server import LanceServer, TlsConfig

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

SERVER_NAME = "lance.test"
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=30)


def make_ca_and_server_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for DNS name `lance.test` only (not 127.0.0.1)."""
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    openssl(
        "req",
        "-x509",
        *_EC,
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        ca_key,
        "-out",
        ca_cert,
    )
    key, csr, cert = directory / "s.key", directory / "s.csr", directory / "s.pem"
    san = f"subjectAltName=DNS:{SERVER_NAME}"
    openssl(
        "req",
        "-new",
        *_EC,
        "-subj",
        f"/CN={SERVER_NAME}",
        "-addext",
        san,
        "-keyout",
        key,
        "-out",
        csr,
    )
    signing = ["-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial", "-copy_extensions", "copy"]
    openssl("x509", "-req", "-in", csr, *signing, "-days", "2", "-out", cert)
    return ca_cert, cert, key


@pytest.mark.ours_only("starts lnc serve with auth tokens")
async def test_tls_with_server_name_and_token_across_a_restart(tmp_path: Path) -> None:
    ca_cert, cert, key = make_ca_and_server_cert(tmp_path)
    tls = TlsConfig(enabled=True, cert_path=cert, key_path=key)
    context = ssl.create_default_context(cafile=ca_cert)
    async with LanceServer(tmp_path / "d", port=0, tls=tls, auth_tokens=["s3cret"]) as server:
        admin = ClientConfig(host="127.0.0.1", port=server.port, auth_token="s3cret")
        async with LanceClient(admin.with_ssl(context, server_hostname=SERVER_NAME)) as client:
            topic = await client.create_topic("secure")

        with pytest.raises(ConnectionError):  # the certificate names lance.test, not 127.0.0.1
            async with LanceClient(admin.with_ssl(context).with_auto_reconnect(False)) as client:
                await client.list_topics()

        producer_config = ProducerConfig(auth_token="s3cret", request_timeout_s=5.0).with_ssl(
            context, server_hostname=SERVER_NAME
        )
        async with Producer(server.address, producer_config) as producer:
            await producer.send(topic_id=topic.id, data=b"before")
            await server.restart()
            await producer.send(topic_id=topic.id, data=b"after")  # re-authenticated
            assert producer.metrics().reconnects >= 1

        consumer_config = StandaloneConfig(
            "tls", topic.id, auth_token="s3cret", ssl_context=context, server_hostname=SERVER_NAME
        )
        async with StandaloneConsumer(server.address, consumer_config) as consumer:
            result = await consumer.poll(timeout=2.0)
            assert result is not None
            assert [r.value for r in result.records] == [b"before", b"after"]
