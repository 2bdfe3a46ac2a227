"""The one exception hierarchy of lnc-client, and the mapping of server error texts onto it.

Every layer raises from here: the sans-I/O protocol layer raises `InvalidFrameError` and
`ProtocolError`, the connection raises `ConnectionError` and `TimeoutError`, and a server's
ErrorResponse (control code 0xFF, a plain UTF-8 text, PROTOCOL.md §4.4) is turned into the
matching class by `error_from_server_text`. The server's text is always kept verbatim in
`LanceError.server_text`, and `LanceError.retryable` tells a caller (or the reconnect policy)
whether the same request may succeed if it is tried again.

`ConnectionError` and `TimeoutError` shadow the builtins inside this module on purpose: the
names are part of the API users already know. They also inherit from the builtin classes, so
`except OSError` and `except TimeoutError` (builtin) keep catching them.
"""

from __future__ import annotations

import builtins
import re
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, Final

if TYPE_CHECKING:
    from lnc_client.protocol.frame import Frame

__all__ = [
    "ERROR_CODE_MAP",
    "AccessDeniedError",
    "AuthenticationError",
    "BackpressureError",
    "ConnectionError",
    "DisconnectedError",
    "ForwardFailedError",
    "FrameFault",
    "InvalidFrameError",
    "InvalidRequestError",
    "InvalidTopicNameError",
    "LanceError",
    "NotLeaderError",
    "PermanentConnectionError",
    "ProtocolError",
    "RateLimitedError",
    "ReplicationError",
    "SegmentMissingError",
    "ServerCatchingUpError",
    "ServerError",
    "ServerIOError",
    "TimeoutError",
    "TopicAlreadyExistsError",
    "TopicNotFoundError",
    "UndecodableRecordError",
    "UnsupportedCommandError",
    "error_from_response",
    "error_from_server_text",
    "validate_topic_name",
]


class LanceError(Exception):
    """Base class of every error raised by lnc-client.

    Attributes:
        message: Human-readable description.
        server_text: The server's ErrorResponse text, verbatim, when the error came from one.
    """

    retryable: ClassVar[bool] = False

    def __init__(self, message: str = "", *, server_text: str | None = None) -> None:
        super().__init__(message or server_text or type(self).__name__)
        self.message = message or server_text or type(self).__name__
        self.server_text = server_text

    def is_retryable(self) -> bool:
        """Return whether the failed operation may succeed if it is tried again."""
        return self.retryable


class ConnectionError(LanceError, builtins.ConnectionError):  # noqa: A001
    """The connection could not be made, or was lost; in-flight requests have no answer."""

    retryable = True


class PermanentConnectionError(ConnectionError):
    """A connection failure that trying again cannot fix; raised at once, never retried.

    A name that does not resolve, TLS against a plaintext port (or the reverse), or a server
    that closes every connection before answering anything. The message says which.
    """

    retryable = False


class DisconnectedError(ConnectionError):
    """There was no connection to the server for `ReconnectConfig.max_disconnected_s`."""

    retryable = False


class TimeoutError(LanceError, builtins.TimeoutError):  # noqa: A001
    """A bounded wait (connect, request, ack, flush) ran out."""

    retryable = True


class ProtocolError(LanceError):
    """The peer sent something this protocol does not allow at this point."""


class UndecodableRecordError(ProtocolError):
    """The bytes at a consumer's offset are not a TLV record it can decode.

    Any client can ingest a payload that is not a TLV chain (the server stores it unparsed).
    The consumer stops there instead of guessing; to go past it, `seek()` to a known record
    boundary after `offset`, or `seek_to_end()`.

    Attributes:
        topic_id: The topic being read.
        offset: The byte offset of the record that cannot be decoded.
    """

    def __init__(self, topic_id: int, offset: int, reason: str) -> None:
        super().__init__(
            f"undecodable record at offset {offset} of topic {topic_id}: {reason}; seek() to a "
            "known record boundary past it, or seek_to_end(), to go on"
        )
        self.topic_id = topic_id
        self.offset = offset


class FrameFault(StrEnum):
    """Why a frame was rejected, in the order the real server checks.

    The texts of `BAD_MAGIC` and `TRUNCATED` are those of lnc-client 0.2.9, whose users may
    match on them.
    """

    PAYLOAD_TOO_LARGE = "Payload too large"
    BAD_MAGIC = "Invalid magic"
    BAD_VERSION = "Unsupported protocol version"
    HEADER_CRC = "Header CRC mismatch"
    PAYLOAD_CRC = "Payload CRC mismatch"
    TRUNCATED = "Buffer too small"


class InvalidFrameError(ProtocolError):
    """A frame failed validation; the byte stream cannot be trusted any longer.

    Attributes:
        fault: Which check failed; None for an error built from a text alone (the
            `InvalidFrameError("bad crc")` form of lnc-client 0.2.9).
        frames: The complete, valid frames that the same decoder call produced before the
            fault, in order. The real server still acts on frames that precede a fault in a
            read (PROTOCOL.md §1.4), so a server or client can do the same with these.
    """

    def __init__(
        self, fault: FrameFault | str, detail: str = "", *, frames: tuple[Frame, ...] = ()
    ) -> None:
        text = fault.value if isinstance(fault, FrameFault) else fault
        super().__init__(f"{text}: {detail}" if detail else text)
        self.fault = fault if isinstance(fault, FrameFault) else None
        self.frames = frames


class UnsupportedCommandError(ProtocolError):
    """The server does not know the control command (`Invalid client command`)."""


class InvalidRequestError(ProtocolError):
    """The server rejected a control payload as malformed (`Invalid ... payload`)."""


class ServerError(LanceError):
    """An ErrorResponse whose text matches no more specific class; the text is kept."""


class ServerIOError(ServerError):
    """The server failed to read or write its storage (`I/O error: ...`)."""


class SegmentMissingError(ServerIOError):
    """A file the server went to read was gone: a segment rotated or was deleted under a read.

    Real Lance answers such a Fetch with `I/O error: No such file or directory (os error 2)`;
    the next try reads the new layout, so it is retryable (docs/compatibility.md).
    """

    retryable = True


class BackpressureError(LanceError):
    """The server or the client-side buffer asks the producer to slow down."""

    retryable = True


class RateLimitedError(BackpressureError):
    """The server's fetch rate limiter refused the request (`Rate limit exceeded`)."""


class ServerCatchingUpError(LanceError):
    """The requested offset lies past the server's end of the topic (CatchingUp, 0x12).

    Attributes:
        server_offset: The server's total bytes for the topic when it answered.
    """

    retryable = True

    def __init__(self, server_offset: int = 0, message: str = "") -> None:
        super().__init__(message or f"server is catching up (its end offset is {server_offset})")
        self.server_offset = server_offset


class TopicNotFoundError(LanceError):
    """The topic does not exist on the server.

    Attributes:
        topic_id: The id or name asked for, when known.
    """

    def __init__(
        self, topic_id: int | str | None = None, *, server_text: str | None = None
    ) -> None:
        described = f"topic {topic_id!r} not found" if topic_id is not None else "topic not found"
        super().__init__(server_text or described, server_text=server_text)
        self.topic_id = topic_id


class TopicAlreadyExistsError(LanceError):
    """A topic with that name exists already.

    Attributes:
        name: The topic name, when known.
    """

    def __init__(self, name: str | None = None, *, server_text: str | None = None) -> None:
        super().__init__(server_text or f"topic {name!r} already exists", server_text=server_text)
        self.name = name


class InvalidTopicNameError(LanceError, ValueError):
    """A topic name breaks the server's rule: non-empty, ASCII letters, digits and dashes.

    Attributes:
        name: The rejected name, when known.
    """

    def __init__(self, name: str | None = None, *, server_text: str | None = None) -> None:
        rule = "must not be empty" if name == "" else "must match [a-zA-Z0-9-]+"
        super().__init__(
            server_text or f"Invalid topic name {name!r}: {rule} (ASCII letters, digits, '-')",
            server_text=server_text,
        )
        self.name = name


class NotLeaderError(LanceError):
    """The node is not the cluster leader (`NOT_LEADER: ...`).

    Attributes:
        leader_addr: The leader's `host:port` when the server named it, else None.
    """

    retryable = True

    def __init__(self, leader_addr: str | None = None, *, server_text: str | None = None) -> None:
        super().__init__(
            server_text or f"not the leader (leader: {leader_addr or 'unknown'})",
            server_text=server_text,
        )
        self.leader_addr = leader_addr


class ForwardFailedError(LanceError):
    """A follower could not forward the request to the leader (`FORWARD_FAILED: ...`)."""

    retryable = True


class ReplicationError(LanceError):
    """The cluster failed to replicate a metadata change (`Failed to replicate ...`)."""

    retryable = True


class AccessDeniedError(LanceError):
    """The server refused the operation for lack of authentication."""


class AuthenticationError(AccessDeniedError):
    """The server rejected the token sent with Authenticate (0x08)."""


_TOPIC_NAME_RE: Final = re.compile(r"[A-Za-z0-9-]+")


def validate_topic_name(name: str) -> str:
    """Check a topic name against the server's rule before anything is sent.

    Args:
        name: The proposed topic name.

    Returns:
        `name` itself, so that `topic = validate_topic_name(text)` reads naturally.

    Raises:
        InvalidTopicNameError: The name is empty or has a character outside `[A-Za-z0-9-]`.
    """
    if not isinstance(name, str) or _TOPIC_NAME_RE.fullmatch(name) is None:
        raise InvalidTopicNameError(name if isinstance(name, str) else repr(name))
    return name


def error_from_server_text(text: str) -> LanceError:
    """Map an ErrorResponse text (PROTOCOL.md §4.4) to the matching exception.

    The texts and their classes are one table, `lnc_client.protocol.error_texts`, which the
    embedded server also writes its texts from.

    Args:
        text: The UTF-8 text of the ErrorResponse payload, verbatim.

    Returns:
        An instance of the most specific class; its `server_text` is `text`. Texts that match
        no known pattern give a `ServerError`.
    """
    # Imported here, not at the top: the protocol package imports this module (the hierarchy
    # sits below it), so a top-level import would be circular.
    from lnc_client.protocol.error_texts import error_for_text

    return error_for_text(text)


ERROR_CODE_MAP: Final[dict[int, type[LanceError]]] = {
    0x01: LanceError,
    0x02: InvalidFrameError,
    0x03: ProtocolError,
    0x04: ProtocolError,
    0x05: InvalidFrameError,
    0x06: ProtocolError,
    0x10: TopicNotFoundError,
    0x11: TopicAlreadyExistsError,
    0x12: InvalidTopicNameError,
    0x13: TopicNotFoundError,
    0x14: ServerCatchingUpError,
    0x20: NotLeaderError,
    0x30: BackpressureError,
    0x31: BackpressureError,
    0x40: AccessDeniedError,
    0x41: AccessDeniedError,
    0x42: AccessDeniedError,
}
"""The numeric error codes lnc-client 0.2.9 defined; no Lance server sends them (it sends text)."""


def error_from_response(
    code: int, message: str, details: dict[str, object] | None = None
) -> LanceError:
    """Build the exception for one of lnc-client 0.2.9's error codes (kept for old callers).

    The Lance server answers errors with a text, never a code: errors received on the wire go
    through `error_from_server_text`. This function only keeps code written for 0.2.9 working.

    Args:
        code: A code of `ERROR_CODE_MAP`; an unknown code maps `message` as a server text.
        message: The error text.
        details: `leader_addr` for NOT_LEADER (0x20), `server_offset` for catching up (0x14).

    Returns:
        The matching exception (not raised).
    """
    kind = ERROR_CODE_MAP.get(code)
    extra = details or {}
    if kind is None:
        return error_from_server_text(message)
    if kind is NotLeaderError:
        leader = extra.get("leader_addr")
        return NotLeaderError(leader if isinstance(leader, str) else None)
    if kind is ServerCatchingUpError:
        offset = extra.get("server_offset", 0)
        return ServerCatchingUpError(offset if isinstance(offset, int) else 0)
    if kind is InvalidFrameError:
        fault = FrameFault.BAD_MAGIC if code == 0x02 else FrameFault.PAYLOAD_CRC
        return InvalidFrameError(fault, message)
    return kind(message)
