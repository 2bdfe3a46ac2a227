"""Is a port speaking TLS, or plaintext LWP? Asked when a connection closed without a word.

A plaintext client connected to a TLS port sees nothing but a closed connection: the TLS server
reads our LWP frame, finds no TLS record in it and hangs up without a word (OpenSSL resets), just
as a proxy in front of a stopped server hangs up. Retrying cannot help in the first case and is
exactly right in the second, so the two are told apart by asking the port. The reverse is the
same: a TLS client at a plaintext port sees its handshake closed (the LWP server reads the
ClientHello as a bad frame and hangs up), as it would at a TLS balancer that is going down.

Flow: `Connection` fails a plaintext connection that closed before the server sent a single byte
with `ClosedInSilenceError` (a `ConnectionError`, retryable). The `ConnectionManager` then
calls `refuse_if_wrong_security`, which opens one more TCP connection, sends a TLS ClientHello
(made in memory by the `ssl` module, with no certificate checks: nothing is sent over it) and
reads the first bytes of the answer. A TLS server answers with a TLS record header: content
type handshake (0x16) or alert (0x15), then major version 3. An LWP server, a stopped one, or a
proxy in front of one does not, and then nothing is decided: on a close, a reset, a timeout or
other bytes the caller goes on retrying as before. Only a TLS answer raises
`PermanentConnectionError`, naming the port and the fix.

The reverse: `Connection.open` fails a TLS handshake that the server closed with
`HandshakeClosedError` (retryable); `refuse_if_wrong_security` then sends the port an LWP
Keepalive in plaintext (a Lance server always answers one with a Keepalive, whatever the auth
state: PROTOCOL.md §3). An answer that starts with the LWP magic raises
`PermanentConnectionError` "... does not speak TLS ...: connect without TLS"; anything else is
retried.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import ssl

from lnc_client.config import Address
from lnc_client.errors import ConnectionError, PermanentConnectionError
from lnc_client.protocol.frame import KEEPALIVE_FRAME, MAGIC

__all__ = [
    "ClosedInSilenceError",
    "HandshakeClosedError",
    "client_hello",
    "is_tls_record",
    "refuse_if_wrong_security",
    "speaks_lwp",
    "speaks_tls",
]

_TLS_RECORD_TYPES = frozenset({0x15, 0x16})
"""Alert and handshake: what a TLS server's first record is, in answer to a ClientHello."""
_TLS_MAJOR_VERSION = 0x03
"""SSL 3.0 and every TLS version carry major version 3 in the record header."""


class ClosedInSilenceError(ConnectionError):
    """A plaintext connection the server closed before it sent a single byte.

    Retryable like any lost connection; the `ConnectionManager` asks the port whether it speaks
    TLS (`refuse_if_wrong_security`) before it retries.
    """


class HandshakeClosedError(ConnectionError):
    """A TLS handshake the server closed or reset.

    Retryable; the `ConnectionManager` asks the port whether it speaks plaintext LWP
    (`refuse_if_wrong_security`) before it retries.
    """


def client_hello(server_hostname: str | None = None) -> bytes:
    """The bytes of a TLS ClientHello, made in memory with the default protocol versions.

    Args:
        server_hostname: Sent as SNI when it is a host name (not for an IP address).

    Returns:
        One or more TLS records, starting with the handshake record type 0x16.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    outgoing = ssl.MemoryBIO()
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname=server_hostname)
    with contextlib.suppress(ssl.SSLWantReadError):  # the ClientHello is out; it waits
        tls.do_handshake()
    return outgoing.read()


def is_tls_record(head: bytes) -> bool:
    """Whether `head`, the first bytes a server sent, starts a TLS record (handshake or alert)."""
    return len(head) >= 2 and head[0] in _TLS_RECORD_TYPES and head[1] == _TLS_MAJOR_VERSION


async def _first_bytes(address: Address, hello: bytes, count: int, timeout_s: float) -> bytes:
    """Send `hello` on a new TCP connection and return the first `count` bytes of the answer.

    Returns b"" on a close, a reset, a refused connect or a timeout; the connection is aborted.
    """
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(address.host, address.port)
            writer.write(hello)
            return await reader.readexactly(count)
    except (OSError, EOFError, builtins.TimeoutError):
        return b""  # ssl.SSLError is an OSError, IncompleteReadError an EOFError
    finally:
        if writer is not None:
            writer.transport.abort()


async def speaks_tls(address: Address, timeout_s: float) -> bool:
    """Send a ClientHello to `address` and say whether it answered like a TLS server.

    Args:
        address: The port to ask (a new TCP connection, aborted after the answer).
        timeout_s: Bound on the whole probe: connect, send, first two bytes.

    Returns:
        True only when the answer starts a TLS record; False on any other answer, a close, a
        reset, a refused connect, a timeout, or a host name no ClientHello can carry.
    """
    try:
        hello = client_hello(address.host)
    except ValueError:  # a name SNI cannot carry (UnicodeError is a ValueError)
        return False
    return is_tls_record(await _first_bytes(address, hello, 2, timeout_s))


async def speaks_lwp(address: Address, timeout_s: float) -> bool:
    """Send a plaintext LWP Keepalive to `address` and say whether an LWP frame came back.

    Args:
        address: The port to ask (a new TCP connection, aborted after the answer).
        timeout_s: Bound on the whole probe.

    Returns:
        True only when the answer starts with the LWP magic.
    """
    return await _first_bytes(address, KEEPALIVE_FRAME, len(MAGIC), timeout_s) == MAGIC


async def refuse_if_wrong_security(
    failure: BaseException | None, address: Address, timeout_s: float
) -> None:
    """Raise `PermanentConnectionError` when `failure` came from a port of the other kind.

    Args:
        failure: Why the last connection (or connect) to `address` failed; only a
            `ClosedInSilenceError` (plaintext) or a `HandshakeClosedError` (TLS) leads to a probe.
        address: The port that closed it.
        timeout_s: Bound on the probe.

    Raises:
        PermanentConnectionError: The port speaks TLS and this client does not, or the reverse.
    """
    if timeout_s <= 0:
        return
    if isinstance(failure, ClosedInSilenceError) and await speaks_tls(address, timeout_s):
        raise PermanentConnectionError(
            f"{address} speaks TLS and this client connected in plaintext (the server closed "
            "the connection without a word and answers a TLS ClientHello): connect with TLS "
            "(`ssl_context=` in the options, `--tls` on the command line)"
        ) from failure
    if isinstance(failure, HandshakeClosedError) and await speaks_lwp(address, timeout_s):
        raise PermanentConnectionError(
            f"TLS to {address} failed in the handshake: the port does not speak TLS (it "
            "answers LWP in plaintext); connect without TLS"
        ) from failure
