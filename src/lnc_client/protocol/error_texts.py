"""The one table of ErrorResponse texts: how the server writes each one, how a client reads it.

The real server sends errors as plain UTF-8 text with no code (PROTOCOL.md §4.4; §2.3, §2.7,
§2.9, §8 for ingest and forwarding; §4.6 for the AuthenticateResponse texts). Each row of this
table is one text: the template a server fills in (`ServerText.format`), the `LanceError`
class a client turns it into (`error_for_text`), and the side of the exchange that can receive
it (`Side`): only an ingest batch, only a control request, or both. The embedded server writes
its texts from here, `lnc_client.errors.error_from_server_text` reads them through here, and
the client exchange (`protocol.exchange`) places an ErrorResponse, which carries no batch id,
by its side.

Data flow: server code -> `ServerText.format(**fields)` -> ErrorResponse payload -> client
`error_for_text(text)` -> the matching `LanceError` with the text kept verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from lnc_client.errors import (
    AccessDeniedError,
    AuthenticationError,
    ForwardFailedError,
    InvalidRequestError,
    InvalidTopicNameError,
    LanceError,
    NotLeaderError,
    RateLimitedError,
    ReplicationError,
    SegmentMissingError,
    ServerError,
    ServerIOError,
    TopicAlreadyExistsError,
    TopicNotFoundError,
    UnsupportedCommandError,
)

__all__ = [
    "ALREADY_EXISTS",
    "ALREADY_EXISTS_CONFIG",
    "AUTHENTICATION_REQUIRED",
    "AUTH_AT_CONNECTION_LEVEL",
    "COMMIT_OFFSET_PAYLOAD",
    "CREATE_TOPIC_PAYLOAD",
    "FETCH_PAYLOAD_REQUIRED",
    "FETCH_PAYLOAD_TOO_SMALL",
    "FORWARD_FAILED",
    "FORWARD_LEADER_NOT_READY",
    "FORWARD_UNKNOWN_TOPIC",
    "INVALID_CLIENT_COMMAND",
    "INVALID_TOKEN",
    "INVALID_TOKEN_ENCODING",
    "IO_ERROR",
    "IO_FILE_GONE",
    "NAME_EMPTY",
    "NAME_INVALID",
    "NAME_REQUIRED",
    "NOT_LEADER",
    "NO_TOKEN",
    "PAYLOAD_LENGTH",
    "RATE_LIMITED",
    "REPLICATION_FAILED",
    "SERVER_TEXTS",
    "SET_RETENTION_PAYLOAD",
    "SUBSCRIBE_PAYLOAD",
    "TOPIC_ID_NOT_FOUND",
    "TOPIC_ID_NOT_FOUND_CONFIG",
    "TOPIC_NOT_FOUND",
    "UNKNOWN_TOPIC",
    "UNSUBSCRIBE_PAYLOAD",
    "ServerText",
    "Side",
    "error_for_text",
    "side_of",
]


class Side(Enum):
    """Which side of the exchange can receive a text."""

    INGEST = "ingest"
    """Only an ingest batch (the server refused a batch)."""
    CONTROL = "control"
    """Only a control request."""
    BOTH = "both"
    """Either: forwarding and leadership texts (§2.7, §2.9, §8)."""


@dataclass(frozen=True, slots=True)
class ServerText:
    """One ErrorResponse text.

    Attributes:
        template: What the server writes, a `str.format` template (`{name}`, `{topic_id}`, ...).
        error: The `LanceError` class a client raises for it.
        side: Which side of the exchange can receive it.
        pattern: How a client recognises a templated text, matched at the start of the text;
            its one group, when present, is the value the error class takes. None for a text
            without fields, recognised exactly.
    """

    template: str
    error: type[LanceError]
    side: Side = Side.CONTROL
    pattern: re.Pattern[str] | None = None

    @property
    def text(self) -> str:
        """The text of a row without fields."""
        return self.template

    def format(self, **fields: object) -> str:
        """Fill in the template, as the server writes it."""
        return self.template.format(**fields)

    def error_for(self, **fields: object) -> LanceError:
        """The error a client makes of this text filled with `fields` (for raising)."""
        return error_for_text(self.format(**fields))


def _exact(template: str, error: type[LanceError], side: Side = Side.CONTROL) -> ServerText:
    return ServerText(template, error, side)


def _templated(
    template: str, error: type[LanceError], pattern: str, side: Side = Side.CONTROL
) -> ServerText:
    return ServerText(template, error, side, re.compile(pattern, re.DOTALL))


# --- ingest (§2.3, §2.9) --------------------------------------------------------------------
UNKNOWN_TOPIC: Final = _exact("Unknown topic", TopicNotFoundError, Side.INGEST)
AUTHENTICATION_REQUIRED: Final = _exact("Authentication required", AccessDeniedError, Side.INGEST)
FORWARD_UNKNOWN_TOPIC: Final = _exact(
    "FORWARD_FAILED: Unknown topic (metadata convergence)", ForwardFailedError, Side.INGEST
)
# --- forwarding and leadership (§8): a leader still takes ingest while not ready ------------
FORWARD_LEADER_NOT_READY: Final = _exact(
    "FORWARD_FAILED: Leader not ready (apply/metadata catch-up)", ForwardFailedError
)
FORWARD_FAILED: Final = _templated(
    "FORWARD_FAILED: {reason}", ForwardFailedError, "FORWARD_FAILED", Side.BOTH
)
NOT_LEADER: Final = _templated(
    "NOT_LEADER: redirect to {leader_addr}",
    NotLeaderError,
    r"NOT_LEADER(?:: redirect to (\S+))?",
    Side.BOTH,
)
# --- topics (§4.4) --------------------------------------------------------------------------
NAME_REQUIRED: Final = _exact("Topic name required", InvalidTopicNameError)
NAME_EMPTY: Final = _exact("Invalid data: Topic name must not be empty", InvalidTopicNameError)
NAME_INVALID: Final = _templated(
    "Invalid data: Topic name '{name}' contains invalid characters. Only alphanumeric "
    "characters (a-z, A-Z, 0-9) and dashes (-) are allowed",
    InvalidTopicNameError,
    r"Invalid data: Topic name '(.*)' contains invalid",
)
ALREADY_EXISTS: Final = _templated(
    "Topic '{name}' already exists", TopicAlreadyExistsError, r"Topic '(.*)' already exists\Z"
)
ALREADY_EXISTS_CONFIG: Final = _templated(
    "Configuration error: Topic '{name}' already exists",
    TopicAlreadyExistsError,
    r"Configuration error: Topic '(.*)' already exists\Z",
)
"""Real Lance: the loser of two concurrent CreateTopics gets it from the registry (topic.rs)."""
TOPIC_NOT_FOUND: Final = _exact("Topic not found", TopicNotFoundError)
TOPIC_ID_NOT_FOUND: Final = _templated(
    "Topic {topic_id} not found", TopicNotFoundError, r"Topic (\d+) not found\Z"
)
TOPIC_ID_NOT_FOUND_CONFIG: Final = _templated(
    "Configuration error: Topic {topic_id} not found",
    TopicNotFoundError,
    r"Configuration error: Topic (\d+) not found\Z",
)
REPLICATION_FAILED: Final = _templated(
    "Failed to replicate {what}", ReplicationError, "Failed to replicate"
)
IO_ERROR: Final = _templated("I/O error: {detail}", ServerIOError, "I/O error", Side.BOTH)
"""A failed write refuses a batch (disk full); a failed command a request."""
IO_FILE_GONE: Final = _exact(
    "I/O error: No such file or directory (os error 2)", SegmentMissingError
)
"""Real Lance: a Fetch that met a segment being rotated (renamed) or deleted by retention."""
# --- commands and payloads (§4.4, §4.5) -----------------------------------------------------
INVALID_CLIENT_COMMAND: Final = _exact("Invalid client command", UnsupportedCommandError)
AUTH_AT_CONNECTION_LEVEL: Final = _exact(
    "Authentication handled at connection level", UnsupportedCommandError
)
RATE_LIMITED: Final = _exact("Rate limit exceeded", RateLimitedError)
FETCH_PAYLOAD_REQUIRED: Final = _exact("Fetch request payload required", InvalidRequestError)
FETCH_PAYLOAD_TOO_SMALL: Final = _exact(
    "Protocol error: Fetch request payload too small", InvalidRequestError
)
CREATE_TOPIC_PAYLOAD: Final = _exact("Invalid create topic payload", InvalidRequestError)
PAYLOAD_LENGTH: Final = _exact("Invalid payload length", InvalidRequestError)
SET_RETENTION_PAYLOAD: Final = _exact("Invalid set retention payload", InvalidRequestError)
SUBSCRIBE_PAYLOAD: Final = _exact("Invalid subscribe payload", InvalidRequestError)
UNSUBSCRIBE_PAYLOAD: Final = _exact("Invalid unsubscribe payload", InvalidRequestError)
COMMIT_OFFSET_PAYLOAD: Final = _exact("Invalid commit offset payload", InvalidRequestError)
# --- AuthenticateResponse texts (§4.6), not ErrorResponses ----------------------------------
INVALID_TOKEN: Final = _exact("Invalid token", AuthenticationError)
NO_TOKEN: Final = _exact("No token provided", AuthenticationError)
INVALID_TOKEN_ENCODING: Final = _exact("Invalid token encoding", AuthenticationError)

SERVER_TEXTS: Final[tuple[ServerText, ...]] = (
    UNKNOWN_TOPIC,
    AUTHENTICATION_REQUIRED,
    FORWARD_UNKNOWN_TOPIC,
    FORWARD_LEADER_NOT_READY,
    FORWARD_FAILED,
    NOT_LEADER,
    NAME_REQUIRED,
    NAME_EMPTY,
    NAME_INVALID,
    ALREADY_EXISTS,
    ALREADY_EXISTS_CONFIG,
    TOPIC_NOT_FOUND,
    TOPIC_ID_NOT_FOUND,
    TOPIC_ID_NOT_FOUND_CONFIG,
    REPLICATION_FAILED,
    IO_FILE_GONE,
    IO_ERROR,
    INVALID_CLIENT_COMMAND,
    AUTH_AT_CONNECTION_LEVEL,
    RATE_LIMITED,
    FETCH_PAYLOAD_REQUIRED,
    FETCH_PAYLOAD_TOO_SMALL,
    CREATE_TOPIC_PAYLOAD,
    PAYLOAD_LENGTH,
    SET_RETENTION_PAYLOAD,
    SUBSCRIBE_PAYLOAD,
    UNSUBSCRIBE_PAYLOAD,
    COMMIT_OFFSET_PAYLOAD,
    INVALID_TOKEN,
    NO_TOKEN,
    INVALID_TOKEN_ENCODING,
)
"""Every row; exact texts are looked up first, then the templated ones in this order."""

_BY_TEXT: Final = {row.template: row for row in SERVER_TEXTS if row.pattern is None}
_TEMPLATED: Final = tuple(row for row in SERVER_TEXTS if row.pattern is not None)


def _row_of(text: str) -> tuple[ServerText | None, str | None]:
    row = _BY_TEXT.get(text)
    if row is not None:
        return row, None
    for row in _TEMPLATED:
        assert row.pattern is not None
        match = row.pattern.match(text)
        if match is not None:
            return row, match.group(1) if row.pattern.groups else None
    return None, None


def side_of(text: str) -> Side:
    """Which side of the exchange can receive this text; unknown texts: control only."""
    row, _ = _row_of(text)
    return Side.CONTROL if row is None else row.side


def error_for_text(text: str) -> LanceError:
    """Map an ErrorResponse text to the matching exception, the text kept as `server_text`.

    Texts that match no row give a `ServerError`.
    """
    row, value = _row_of(text)
    if row is None:
        return ServerError(server_text=text)
    if value is None:
        return row.error(server_text=text)
    return _WITH_VALUE[row.error](value, text)


_WITH_VALUE: Final[dict[type[LanceError], Callable[[str, str], LanceError]]] = {
    TopicNotFoundError: lambda value, text: TopicNotFoundError(int(value), server_text=text),
    TopicAlreadyExistsError: lambda value, text: TopicAlreadyExistsError(value, server_text=text),
    InvalidTopicNameError: lambda value, text: InvalidTopicNameError(value, server_text=text),
    NotLeaderError: lambda value, text: NotLeaderError(value, server_text=text),
}
"""How the classes of templated rows take the value their pattern captured."""
