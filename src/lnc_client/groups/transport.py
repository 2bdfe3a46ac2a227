"""One request/reply exchange with a group coordinator over TCP (Python or Rust coordinator).

Like the Rust `GroupedConsumer`, every request opens its own connection: connect, write the
request, read until the bytes parse as a complete reply (`wire.parse_reply`), close. Everything
runs under one deadline, so a silent coordinator costs at most `timeout` seconds.
"""

from __future__ import annotations

import asyncio
import builtins

from lnc_client.config import Address, parse_address
from lnc_client.errors import ConnectionError, LanceError, ProtocolError, TimeoutError
from lnc_client.groups.wire import (
    MAX_MESSAGE_BYTES,
    LeaveAcknowledged,
    Reply,
    RequestKind,
    encode_request,
    parse_reply,
)

__all__ = ["exchange"]


async def exchange(
    coordinator: str | Address, kind: RequestKind, worker_id: str, *, timeout: float
) -> Reply:
    """Send one request to the coordinator and return its reply.

    A LEAVE whose connection closes without a reply counts as acknowledged: the Rust worker
    does not wait for that reply either.

    Raises:
        ConnectionError: The coordinator could not be reached or closed without replying.
        TimeoutError: No complete reply within `timeout` seconds.
        ProtocolError: The reply is not one this protocol knows.
    """
    address = parse_address(coordinator)
    request = encode_request(kind, worker_id)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address.host, address.port)
            writer.write(request)
            await writer.drain()
            received = b""
            while True:
                chunk = await reader.read(MAX_MESSAGE_BYTES)
                if not chunk:
                    if kind is RequestKind.LEAVE and not received:
                        return LeaveAcknowledged()
                    raise ConnectionError(
                        f"coordinator {address} closed the connection before replying "
                        f"to {kind.value}"
                    )
                received += chunk
                try:
                    reply = parse_reply(received)
                except ValueError as error:
                    raise ProtocolError(f"coordinator {address}: {error}") from None
                if reply is not None:
                    return reply
                if len(received) > MAX_MESSAGE_BYTES:
                    raise ProtocolError(f"coordinator {address}: reply longer than 4096 bytes")
    except LanceError:
        raise
    except builtins.TimeoutError:
        raise TimeoutError(
            f"coordinator {address} did not answer {kind.value} within {timeout} s"
        ) from None
    except OSError as error:
        raise ConnectionError(f"coordinator {address}: {error}") from error
    finally:
        if writer is not None:
            writer.close()
