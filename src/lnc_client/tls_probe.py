"""Is a port speaking TLS? One ClientHello, then a look at the first two bytes of the answer.

A plaintext client connected to a TLS port sees nothing but a closed connection: the TLS server
reads our LWP frame, finds no TLS record in it and hangs up without a word (OpenSSL resets), just
as a proxy in front of a stopped server hangs up. Retrying cannot help in the first case and is
exactly right in the second, so the two are told apart by asking the port.

Flow: `Connection` fails a plaintext connection that closed before the server sent a single byte
with `ClosedInSilenceError` (a `ConnectionError`, retryable). The `ConnectionManager` then calls
`refuse_if_tls`, which opens one more TCP connection, sends a TLS ClientHello (made in memory by
the `ssl` module, with no certificate checks: nothing is ever sent over it) and reads the first
bytes of the answer. A TLS server answers with a TLS record header: content type handshake
(0x16) or alert (0x15), then major version 3. An LWP server, a stopped one, or a proxy in front of
one does not, and then nothing is decided: on a close, a reset, a timeout or other bytes the
caller goes on retrying as before. Only a TLS answer raises `PermanentConnectionError`, naming
the port and the fix.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import ssl

from lnc_client.config import Address
from lnc_client.errors import ConnectionError, PermanentConnectionError

__all__ = ["ClosedInSilenceError", "client_hello", "is_tls_record", "refuse_if_tls", "speaks_tls"]

_TLS_RECORD_TYPES = frozenset({0x15, 0x16})
"""Alert and handshake: what a TLS server's first record is, in answer to a ClientHello."""
_TLS_MAJOR_VERSION = 0x03
"""SSL 3.0 and every TLS version carry major version 3 in the record header."""


class ClosedInSilenceError(ConnectionError):
    """A plaintext connection the server closed before it sent a single byte.

    Retryable like any lost connection; the `ConnectionManager` asks the port whether it speaks
    TLS (`refuse_if_tls`) before it retries.
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


async def speaks_tls(address: Address, timeout_s: float) -> bool:
    """Send a ClientHello to `address` and say whether it answered like a TLS server.

    Args:
        address: The port to ask (a new TCP connection, aborted after the answer).
        timeout_s: Bound on the whole probe: connect, send, first two bytes.

    Returns:
        True only when the answer starts a TLS record; False on any other answer, a close, a
        reset, a refused connect or a timeout.
    """
    writer: asyncio.StreamWriter | None = None
    try:
        hello = client_hello(address.host)  # ValueError: a name SNI cannot carry
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(address.host, address.port)
            writer.write(hello)
            head = await reader.readexactly(2)
    except (OSError, EOFError, ValueError, builtins.TimeoutError):
        return False  # ssl.SSLError is an OSError, IncompleteReadError an EOFError
    finally:
        if writer is not None:
            writer.transport.abort()
    return is_tls_record(head)


async def refuse_if_tls(failure: BaseException | None, address: Address, timeout_s: float) -> None:
    """Raise `PermanentConnectionError` when `failure` was a silent close by a TLS port.

    Args:
        failure: Why the last plaintext connection (or connect) to `address` failed; only a
            `ClosedInSilenceError` leads to a probe.
        address: The port that closed it.
        timeout_s: Bound on the probe.

    Raises:
        PermanentConnectionError: The port speaks TLS and this client does not.
    """
    if not isinstance(failure, ClosedInSilenceError) or timeout_s <= 0:
        return
    if await speaks_tls(address, timeout_s):
        raise PermanentConnectionError(
            f"{address} speaks TLS and this client connected in plaintext (the server closed "
            "the connection without a word and answers a TLS ClientHello): connect with TLS "
            "(`ssl_context=` in the options, `--tls` on the command line)"
        ) from failure
