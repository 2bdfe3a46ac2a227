"""Auth, fault injection, idle timeout, TLS and flow control."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lnc_client.protocol.control import (
    authenticate_payload,
    create_topic_payload,
    encode_fetch_response,
    fetch_payload,
)
from lnc_client.protocol.frame import (
    HEADER_SIZE,
    KEEPALIVE_FRAME,
    ControlCommand,
    build_ack_frame,
    build_backpressure_frame,
    build_control_frame,
    build_ingest_frame,
)
from lnc_client.server import AuthConfig, FaultConfig, LanceServer, ServerConfig, TlsConfig
from lnc_client.server.session import Session

from .conftest import TIMEOUT, RawConn

C = ControlCommand
RECORD = b"\x01\x03\x00\x00\x00abc"


def ingest(batch_id: int, topic: int = 1, payload: bytes = RECORD) -> bytes:
    return build_ingest_frame(payload, batch_id=batch_id, record_count=1, topic_id=topic)


def auth_reply(ok: bool, text: str) -> bytes:
    return build_control_frame(C.AUTHENTICATE_RESPONSE, bytes([ok]) + text.encode())


AUTH_REQUIRED = build_control_frame(C.ERROR_RESPONSE, b"Authentication required")


@pytest.mark.parametrize(
    ("command", "payload"),
    [
        (C.CREATE_TOPIC, b"t"),
        (C.CREATE_TOPIC_WITH_RETENTION, b""),
        (C.DELETE_TOPIC, struct.pack("<I", 1)),
        (C.SET_RETENTION, bytes(20)),
        (C.FETCH, fetch_payload(1, 0, 100)),
        (C.LIST_TOPICS, b""),
        (C.GET_TOPIC, struct.pack("<I", 1)),
        (C.GET_CLUSTER_STATUS, b""),
        (C.SUBSCRIBE, bytes(24)),
        (C.UNSUBSCRIBE, bytes(12)),
        (C.COMMIT_OFFSET, bytes(20)),
        (0x7F, b""),
    ],
)
async def test_token_auth_gates_every_command(tmp_path: Path, command: int, payload: bytes) -> None:
    async with LanceServer(tmp_path, port=0, auth_tokens=["s3cret"]) as server:
        conn = await RawConn.open(server.port)
        assert await conn.ask(command, payload) == AUTH_REQUIRED  # connection stays open
        await conn.send(ingest(1))
        assert await conn.read_frame() == AUTH_REQUIRED
        await conn.send(ingest(2, payload=b""))  # zero-length still passes through the check
        assert await conn.read_frame() == AUTH_REQUIRED
        assert await conn.ask(C.AUTHENTICATE, authenticate_payload("s3cret")) == auth_reply(
            True, "Authenticated"
        )
        assert await conn.ask(command, payload) != AUTH_REQUIRED
        await conn.close()


async def test_authenticate_texts_and_auth_state_per_connection(tmp_path: Path) -> None:
    async with LanceServer(tmp_path, port=0, auth_tokens=["s3cret"]) as server:
        conn = await RawConn.open(server.port)
        assert await conn.ask(C.AUTHENTICATE) == auth_reply(False, "No token provided")
        assert await conn.ask(C.AUTHENTICATE, b"\xff") == auth_reply(
            False, "Invalid token encoding"
        )
        assert await conn.ask(C.AUTHENTICATE, authenticate_payload("s3cret")) == auth_reply(
            True, "Authenticated"
        )
        assert (await conn.ask(C.CREATE_TOPIC, create_topic_payload("t")))[12] == C.TOPIC_RESPONSE
        await conn.send(ingest(3))
        assert await conn.read_frame() == build_ack_frame(3)
        other = await RawConn.open(server.port)  # auth state is per connection
        await other.send(ingest(4))
        assert (await other.read_frame())[HEADER_SIZE:] == b"Authentication required"
        await other.close()
        await conn.close()


async def test_failed_authenticate_attempts_are_limited_per_connection(tmp_path: Path) -> None:
    auth = AuthConfig(enabled=True, tokens=("s3cret",), max_failures=3)
    async with LanceServer(config=ServerConfig(tmp_path, port=0, auth=auth)) as server:
        conn = await RawConn.open(server.port)
        for _ in range(2):
            assert await conn.ask(C.AUTHENTICATE, b"guess") == auth_reply(False, "Invalid token")
        await conn.send(build_control_frame(C.AUTHENTICATE, b"guess"))
        # the third refusal is answered, then the connection is closed
        assert await conn.expect_closed() == auth_reply(False, "Invalid token")
        fresh = await RawConn.open(server.port)
        assert await fresh.ask(C.AUTHENTICATE, b"s3cret") == auth_reply(True, "Authenticated")
        await fresh.close()
        await conn.close()


async def test_write_only_true_allows_unauthenticated_ingest(tmp_path: Path) -> None:
    auth = AuthConfig(enabled=True, tokens=("t",), write_only=True)
    config = ServerConfig(tmp_path, port=0, auth=auth)
    async with LanceServer(config=config) as server:
        admin = await RawConn.open(server.port)
        await admin.ask(C.AUTHENTICATE, b"t")
        await admin.ask(C.CREATE_TOPIC, create_topic_payload("t"))
        conn = await RawConn.open(server.port)
        await conn.send(ingest(1))
        assert await conn.read_frame() == build_ack_frame(1)
        assert await conn.ask(C.LIST_TOPICS) == AUTH_REQUIRED  # commands stay protected
        await conn.close()
        await admin.close()


async def test_token_file(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("# comment\n\n  file-token  \n")
    config = ServerConfig(tmp_path / "d", port=0, auth=AuthConfig(enabled=True, token_file=tokens))
    async with LanceServer(config=config) as server:
        conn = await RawConn.open(server.port)
        assert await conn.ask(C.AUTHENTICATE, b"file-token") == auth_reply(True, "Authenticated")
        await conn.close()


async def test_faults_change_at_runtime(tmp_path: Path) -> None:
    faults = FaultConfig(backpressure_every_n_acks=2)
    async with LanceServer(tmp_path, port=0, faults=faults) as server:
        conn = await RawConn.open(server.port)
        await conn.ask(C.CREATE_TOPIC, create_topic_payload("t"))
        await conn.send(ingest(1) + ingest(2) + ingest(3))
        assert await conn.read_frames(4) == [
            build_ack_frame(1),
            build_ack_frame(2),
            build_backpressure_frame(),
            build_ack_frame(3),
        ]
        server.faults = FaultConfig(ack_delay_ms=150)
        started = time.monotonic()
        await conn.send(ingest(4))
        assert await conn.read_frame() == build_ack_frame(4)
        assert time.monotonic() - started >= 0.14
        server.faults = FaultConfig(max_fetch_bytes=4)
        assert await conn.ask(C.FETCH, fetch_payload(1, 0, 100)) == build_control_frame(
            C.FETCH_RESPONSE, struct.pack("<QII", 4, 4, 1) + RECORD[:4]
        )
        server.faults = FaultConfig(drop_after_frames=2)
        await conn.send(KEEPALIVE_FRAME)
        assert await conn.read_frame() == KEEPALIVE_FRAME
        await conn.send(ingest(5))  # the second frame: dropped, no reply
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await conn.read_frame()
        await conn.close()
        server.faults = FaultConfig()
        fresh = await RawConn.open(server.port)
        await fresh.send(KEEPALIVE_FRAME)
        assert await fresh.read_frame() == KEEPALIVE_FRAME
        await fresh.close()


async def test_idle_timeout_is_off_by_default_and_optional(tmp_path: Path) -> None:
    async with LanceServer(tmp_path, port=0, idle_timeout_secs=0.2) as server:
        conn = await RawConn.open(server.port)
        assert await conn.expect_closed() == b""
        await conn.close()
    async with LanceServer(tmp_path, port=0) as server:
        conn = await RawConn.open(server.port)
        await conn.expect_silence(0.3)
        await conn.close()


async def test_peer_that_never_reads_is_throttled_by_tcp(tmp_path: Path) -> None:
    async with LanceServer(tmp_path, port=0) as server:
        conn = await RawConn.open(server.port)
        await conn.ask(C.CREATE_TOPIC, create_topic_payload("t"))
        big = b"\x01" + struct.pack("<I", 1 << 20) + bytes(1 << 20)
        await conn.send(ingest(1, payload=big))
        await conn.read_frame()
        request = build_control_frame(C.FETCH, fetch_payload(1, 0, 1 << 20)) * 1000
        blocked = False
        for _ in range(200):  # up to 12 MB of requests for 200 GB of replies
            conn.writer.write(request)
            try:
                await asyncio.wait_for(conn.writer.drain(), 0.5)
            except TimeoutError:
                blocked = True
                break
        assert blocked, "the server kept reading although its replies were not read"
        session = next(iter(server._sessions))
        assert session._transport.get_write_buffer_size() < 8 * (1 << 20)
        conn.writer.transport.abort()


_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]


def _make_cert(
    directory: Path, name: str, ca: tuple[Path, Path] | None = None
) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    subj = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    if ca is None:
        cmd = ["openssl", "req", "-x509", *_EC, "-nodes", "-days", "2", "-subj", "/CN=test-ca"]
        subprocess.run([*cmd, "-keyout", key, "-out", cert], check=True, capture_output=True)
    else:
        csr = directory / f"{name}.csr"
        subprocess.run(
            ["openssl", "req", "-new", *_EC, "-nodes", "-keyout", key, "-out", csr, *subj],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                "openssl",
                "x509",
                "-req",
                "-in",
                csr,
                "-CA",
                ca[1],
                "-CAkey",
                ca[0],
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                cert,
            ],
            check=True,
            capture_output=True,
        )
    return key, cert


async def _tls_keepalive(port: int, context: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context), TIMEOUT
    )
    conn = RawConn(reader, writer)
    try:
        await conn.send(KEEPALIVE_FRAME)
        return await conn.read_frame()
    finally:
        await conn.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_tls_with_client_certificates(tmp_path: Path) -> None:
    ca_key, ca_cert = _make_cert(tmp_path, "ca")
    server_key, server_cert = _make_cert(tmp_path, "server", (ca_key, ca_cert))
    client_key, client_cert = _make_cert(tmp_path, "client", (ca_key, ca_cert))
    tls = TlsConfig(
        enabled=True,
        cert_path=server_cert,
        key_path=server_key,
        ca_path=ca_cert,
        require_client_cert=True,
    )
    async with LanceServer(tmp_path / "d", port=0, tls=tls) as server:
        context = ssl.create_default_context(cafile=ca_cert)
        context.check_hostname = False  # the chain is still verified against the test CA
        context.load_cert_chain(client_cert, client_key)
        assert await _tls_keepalive(server.port, context) == KEEPALIVE_FRAME
        anonymous = ssl.create_default_context(cafile=ca_cert)
        anonymous.check_hostname = False
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            await _tls_keepalive(server.port, anonymous)
        # a plain client speaking LWP to the TLS port gets nothing back
        plain = await RawConn.open(server.port)
        await plain.send(KEEPALIVE_FRAME)
        assert await plain.expect_closed() == b""
        await plain.close()


async def test_replies_held_behind_unacked_reads_stay_bounded(tmp_path: Path) -> None:
    high, window = 64 * 1024, 32 * 1024
    config = ServerConfig(tmp_path, port=0, write_buffer_high_bytes=high)
    async with LanceServer(config=config) as server:
        conn = await RawConn.open(server.port)
        await conn.ask(C.CREATE_TOPIC, create_topic_payload("t"))
        big = b"\x01" + struct.pack("<I", 200_000) + bytes(range(256)) * 781 + bytes(64)
        await conn.send(ingest(1, payload=big))
        assert await conn.read_frame() == build_ack_frame(1)
        server.faults = FaultConfig(ack_delay_ms=400)  # holds the next read's Ack, as a slow fsync
        await conn.send(ingest(2))
        await asyncio.sleep(0.02)
        offsets = [n * 1000 for n in range(40)]
        for offset in offsets:  # one read each; their replies must wait behind Ack 2
            await conn.send(build_control_frame(C.FETCH, fetch_payload(1, offset, window)))
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.1)
        # the Fetches wait unanswered behind Ack 2 (as on the real server), so no reply is held
        assert 0 <= server.held_reply_bytes <= high + window + HEADER_SIZE + 16
        assert await conn.read_frame() == build_ack_frame(2)
        for offset in offsets:  # every reply arrives, in order, once the Ack is out
            frame = await conn.read_frame()
            assert frame == build_control_frame(
                C.FETCH_RESPONSE,
                b"".join(encode_fetch_response(offset + window, big[offset : offset + window])),
            )
        assert server.held_reply_bytes == 0
        await conn.close()


async def test_idle_timer_waits_once_for_pending_acks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[float] = []
    original = Session._check_idle

    def counted(self: Session) -> None:
        checks.append(time.monotonic())
        original(self)

    monkeypatch.setattr(Session, "_check_idle", counted)
    faults = FaultConfig(ack_delay_ms=400)
    async with LanceServer(tmp_path, port=0, idle_timeout_secs=0.1, faults=faults) as server:
        conn = await RawConn.open(server.port)
        await conn.ask(C.CREATE_TOPIC, create_topic_payload("t"))
        await conn.send(ingest(1))
        assert await conn.read_frame() == build_ack_frame(1)  # not closed while owed an Ack
        acked = time.monotonic()
        assert await conn.expect_closed() == b""
        assert time.monotonic() - acked >= 0.05  # idle counted from the Ack, not from the read
        await conn.close()
    assert len(checks) <= 4, f"the idle timer woke {len(checks)} times"


async def _closed_within(port: int, context: ssl.SSLContext | None, bound: float) -> bool:
    """Connect; True once the server closes (or refuses) the connection, False if it stays."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=context), bound
        )
    except (OSError, TimeoutError):  # refused or reset during the handshake: closed
        return True
    try:
        await asyncio.wait_for(reader.read(), bound)
    except TimeoutError:
        return False
    except OSError:  # reset (ssl.SSLError is an OSError)
        pass
    writer.transport.abort()
    return True


@pytest.mark.parametrize("use_tls", [False, True], ids=["tcp", "tls"])
async def test_connections_accepted_while_stopping_are_all_closed(
    tmp_path: Path, use_tls: bool
) -> None:
    context: ssl.SSLContext | None = None
    tls: TlsConfig | None = None
    if use_tls:
        if shutil.which("openssl") is None:
            pytest.skip("needs the openssl command")
        ca_key, ca_cert = _make_cert(tmp_path, "ca")
        key, cert = _make_cert(tmp_path, "server", (ca_key, ca_cert))
        tls = TlsConfig(enabled=True, cert_path=cert, key_path=key)
        context = ssl.create_default_context(cafile=ca_cert)
        context.check_hostname = False
    server = LanceServer(tmp_path / "d", port=0, tls=tls)
    for delay in (0.0, 0.001, 0.003, 0.006, 0.01):
        await server.start()
        clients = [
            asyncio.create_task(_closed_within(server.port, context, 1.5)) for _ in range(40)
        ]
        await asyncio.sleep(delay)
        await server.stop()
        closed = await asyncio.gather(*clients)
        assert server.connection_count == 0
        assert all(closed), f"{closed.count(False)} connections stayed open after stop()"


async def test_a_connection_accepted_just_before_stop_is_closed_not_leaked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop accepted connections, their transports are not made yet, and stop() begins.

    Closing the listener at that moment made the transports' creation fail inside asyncio
    (Python 3.11: `Server._attach` asserts the server is open), so the accepted sockets were
    never closed: the peer saw nothing, and the garbage collector later warned about them.
    """
    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    server = LanceServer(tmp_path / "d", port=0)
    await server.start()
    peers = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(5)]
    try:
        await asyncio.sleep(0)  # the loop accepts them in the next turn ...
        await asyncio.sleep(0)  # ... and stop() runs before their transports are made
        await server.stop()
        for peer in peers:
            peer.settimeout(TIMEOUT)
            with contextlib.suppress(ConnectionResetError):  # closed (FIN) or reset: both fine
                assert peer.recv(1) == b""
        gc.collect()
    finally:
        for peer in peers:
            peer.close()
    assert unraisable == []
