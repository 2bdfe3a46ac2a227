"""The consumer-group coordinator protocol, as Lance's Rust `lnc-client` speaks it (sans-I/O).

The Rust `GroupCoordinator` (`lnc-client/src/grouped.rs`) does not use LWP. It listens on its
own TCP port (default 19920) and speaks unframed text: a worker opens a connection, writes one
request, reads one reply. Requests are ASCII `VERB:<worker id>`::

    JOIN:w1   LEAVE:w1   HEARTBEAT:w1   GET_ASSIGNMENTS:w1

The coordinator takes one `read()` (at most 4096 bytes) as one request, trims the worker id, and
answers with the Rust `Debug` rendering of its response enum, e.g.::

    JoinAccepted { worker_id: "w1", generation: 1, assignments: [1, 2] }
    HeartbeatAck { generation: 3 }
    Assignments { generation: 3, assignments: [] }
    LeaveAcknowledged
    Error { message: "Worker not found" }

There is no length prefix or terminator: a reply is complete when it parses (`parse_reply`
returns None for a prefix). The Rust worker opens a new connection per request and reads a
single chunk; the Rust coordinator keeps a connection open for further requests. Both sides here
do the same, so Python and Rust peers interoperate in both directions.

Data flow: worker -> `encode_request` -> bytes; coordinator bytes -> `parse_request` ->
`Request` -> (group state) -> reply value -> `encode_reply` -> bytes; worker bytes ->
`parse_reply` -> reply value. Nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeVar

__all__ = [
    "MAX_MESSAGE_BYTES",
    "WORKER_NOT_FOUND",
    "Assignments",
    "CoordinatorError",
    "HeartbeatAck",
    "JoinAccepted",
    "LeaveAcknowledged",
    "Reply",
    "Request",
    "RequestKind",
    "encode_reply",
    "encode_request",
    "parse_reply",
    "parse_request",
    "validate_worker_id",
]

MAX_MESSAGE_BYTES: Final = 4096
"""The Rust coordinator and worker read at most this many bytes per message."""

_MAX_WORKER_ID_BYTES: Final = 255


class RequestKind(StrEnum):
    """The four requests, by their wire verb."""

    JOIN = "JOIN"
    LEAVE = "LEAVE"
    HEARTBEAT = "HEARTBEAT"
    GET_ASSIGNMENTS = "GET_ASSIGNMENTS"


@dataclass(frozen=True, slots=True)
class Request:
    """One worker request: the verb and the worker id."""

    kind: RequestKind
    worker_id: str


@dataclass(frozen=True, slots=True)
class JoinAccepted:
    """Reply to JOIN: the worker's generation and its topics."""

    worker_id: str
    generation: int
    assignments: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    """Reply to HEARTBEAT: the group's current generation."""

    generation: int


@dataclass(frozen=True, slots=True)
class Assignments:
    """Reply to GET_ASSIGNMENTS: the group's generation and the worker's topics."""

    generation: int
    assignments: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LeaveAcknowledged:
    """Reply to LEAVE."""


@dataclass(frozen=True, slots=True)
class CoordinatorError:
    """Error reply, e.g. `Worker not found` for a worker the coordinator dropped."""

    message: str


Reply = JoinAccepted | HeartbeatAck | Assignments | LeaveAcknowledged | CoordinatorError

WORKER_NOT_FOUND: Final = "Worker not found"
_NAMES: Final = ("JoinAccepted", "HeartbeatAck", "Assignments", "LeaveAcknowledged", "Error")
_T = TypeVar("_T")


def validate_worker_id(worker_id: str) -> str:
    """Return `worker_id` if it can cross the wire unchanged, else raise ValueError.

    The Rust side trims whitespace and renders ids with `Debug`, so an id must be non-empty,
    have no whitespace or control characters, and fit in 255 UTF-8 bytes.
    """
    if (
        not worker_id
        or len(worker_id.encode("utf-8")) > _MAX_WORKER_ID_BYTES
        or any(c.isspace() or not c.isprintable() for c in worker_id)
    ):
        raise ValueError(
            f"a worker id is 1-255 UTF-8 bytes of printable, non-space text, not {worker_id!r}"
        )
    return worker_id


def encode_request(kind: RequestKind, worker_id: str) -> bytes:
    """Return the bytes of one request, e.g. `b"HEARTBEAT:w1"`."""
    return f"{kind.value}:{validate_worker_id(worker_id)}".encode()


def parse_request(data: bytes) -> Request | CoordinatorError:
    """Parse one request as the Rust coordinator does (prefix match, id trimmed).

    Returns a `CoordinatorError` (the reply to send) for an unknown verb or an empty id.

    Raises:
        UnicodeDecodeError: The bytes are not UTF-8 (the Rust coordinator drops the connection).
    """
    text = data.decode("utf-8")
    for kind in sorted(RequestKind, key=lambda k: -len(k.value)):
        prefix = f"{kind.value}:"
        if text.startswith(prefix):
            worker_id = text[len(prefix) :].strip()
            if not worker_id:
                return CoordinatorError("Empty worker id")
            return Request(kind, worker_id)
    return CoordinatorError(f"Unknown message: {text}")


def _debug_str(text: str) -> str:
    """Render `text` the way Rust's `{:?}` renders a `String`."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif char == "\0":
            out.append("\\0")
        elif not char.isprintable():
            out.append(f"\\u{{{ord(char):x}}}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _debug_list(values: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def encode_reply(reply: Reply) -> bytes:
    """Return the bytes of a reply, exactly as the Rust coordinator renders it."""
    match reply:
        case JoinAccepted(worker_id, generation, assignments):
            text = (
                f"JoinAccepted {{ worker_id: {_debug_str(worker_id)}, generation: {generation}, "
                f"assignments: {_debug_list(assignments)} }}"
            )
        case HeartbeatAck(generation):
            text = f"HeartbeatAck {{ generation: {generation} }}"
        case Assignments(generation, assignments):
            text = (
                f"Assignments {{ generation: {generation}, "
                f"assignments: {_debug_list(assignments)} }}"
            )
        case LeaveAcknowledged():
            text = "LeaveAcknowledged"
        case CoordinatorError(message):
            text = f"Error {{ message: {_debug_str(message)} }}"
    return text.encode()


_REPLY: Final = re.compile(r"(?s)\A\s*([A-Za-z]+)(?:\s*\{(.*)\})?\s*\Z")
_FIELD: Final = re.compile(
    r'\s*([a-z_]+):\s*("(?:[^"\\]|\\.)*"|\[[0-9,\s]*\]|[0-9]+)\s*(?:,|\Z)', re.DOTALL
)
_ESCAPE: Final = re.compile(r"\\(u\{[0-9a-fA-F]+\}|.)", re.DOTALL)
_SIMPLE_ESCAPES: Final = {"n": "\n", "r": "\r", "t": "\t", "0": "\0"}


def _undebug_str(literal: str) -> str:
    def replace(match: re.Match[str]) -> str:
        escape = match.group(1)
        if escape.startswith("u{"):
            return chr(int(escape[2:-1], 16))
        return _SIMPLE_ESCAPES.get(escape, escape)

    return _ESCAPE.sub(replace, literal[1:-1])


def _fields(body: str) -> dict[str, str | int | tuple[int, ...]]:
    fields: dict[str, str | int | tuple[int, ...]] = {}
    position = 0
    while position < len(body) and body[position:].strip():
        match = _FIELD.match(body, position)
        if match is None:
            raise ValueError(f"cannot parse the reply fields {body!r}")
        name, value = match.groups()
        if value.startswith('"'):
            fields[name] = _undebug_str(value)
        elif value.startswith("["):
            fields[name] = tuple(int(v) for v in value[1:-1].split(",") if v.strip())
        else:
            fields[name] = int(value)
        position = match.end()
    return fields


def _typed(fields: dict[str, str | int | tuple[int, ...]], name: str, kind: type[_T]) -> _T:
    value = fields.get(name)
    if not isinstance(value, kind):
        message = f"the reply has no {kind.__name__} field {name!r}"
        raise ValueError(message)  # noqa: TRY004 - a malformed reply, like every other
    return value


def parse_reply(data: bytes) -> Reply | None:
    """Parse a coordinator reply; None when `data` is an incomplete prefix of one.

    Raises:
        ValueError: The bytes are not a reply this protocol knows (or not UTF-8).
    """
    text = data.decode("utf-8", errors="strict")
    match = _REPLY.match(text)
    if match is None:
        if text.strip() and "{" in text and not text.rstrip().endswith("}"):
            return None
        raise ValueError(f"not a coordinator reply: {text!r}")
    name, body = match.group(1), match.group(2)
    if name == "LeaveAcknowledged" and body is None:
        return LeaveAcknowledged()
    if body is None:
        if "{" not in text and any(known.startswith(name) for known in _NAMES):
            return None
        raise ValueError(f"not a coordinator reply: {text!r}")
    fields = _fields(body)
    if name == "JoinAccepted":
        return JoinAccepted(
            _typed(fields, "worker_id", str),
            _typed(fields, "generation", int),
            _typed(fields, "assignments", tuple),
        )
    if name == "HeartbeatAck":
        return HeartbeatAck(_typed(fields, "generation", int))
    if name == "Assignments":
        return Assignments(_typed(fields, "generation", int), _typed(fields, "assignments", tuple))
    if name == "Error":
        return CoordinatorError(_typed(fields, "message", str))
    raise ValueError(f"not a coordinator reply: {text!r}")
