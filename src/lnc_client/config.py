"""Client configuration: frozen values for connections, producers, consumers and reconnects.

Every config is a frozen, slotted dataclass. The `with_*` builders of lnc-client 0.2.9 are kept,
but they return a modified copy instead of mutating in place, so a config can be shared safely
between tasks (`cfg = ProducerConfig().with_batch_size(65536).with_linger_ms(2)` works as before).

Data flow: the owner of a connection (Producer, StandaloneConsumer, LanceClient) turns its config
into `ConnectionOptions` (what one connection needs) and a `ReconnectConfig` (what the reconnect
loop needs); nothing below this module reads the user-facing configs.
"""

from __future__ import annotations

import math
import random
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum, StrEnum
from pathlib import Path
from typing import Final, Self, TypedDict, Unpack

from lnc_client.errors import validate_topic_name
from lnc_client.protocol.control import TAIL_OFFSET, RetentionInfo, TopicInfo
from lnc_client.protocol.frame import DEFAULT_PORT, MAX_PAYLOAD_SIZE
from lnc_client.protocol.records import RecordDialect

__all__ = [
    "Address",
    "Addresses",
    "BufferFullPolicy",
    "ClientConfig",
    "ConnectionOptions",
    "ProducerConfig",
    "ReconnectConfig",
    "RetentionInfo",
    "SeekPosition",
    "StandaloneConfig",
    "StandaloneOptions",
    "TopicInfo",
    "address_list",
    "parse_address",
]


@dataclass(frozen=True, slots=True)
class Address:
    """A server address.

    Attributes:
        host: Host name, IPv4 or IPv6 literal (without brackets).
        port: TCP port.
    """

    host: str
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


_HOST: Final = re.compile(r"[A-Za-z0-9_.\-]+|[0-9A-Fa-f:.%A-Za-z]*:[0-9A-Fa-f:.%A-Za-z]*")
"""A DNS name or IPv4 literal, or an IPv6 literal (it has a colon)."""


def parse_address(address: str | Address, *, default_port: int = DEFAULT_PORT) -> Address:
    """Parse `host:port`, `[v6addr]:port`, a bare host or a bare IPv6 literal.

    Args:
        address: The text to parse (an `Address` is returned unchanged).
        default_port: The port when none is given.

    Raises:
        ValueError: Empty host, a scheme (`lance://`) or characters no host name has,
            malformed brackets or a port outside 0-65535.
    """
    if isinstance(address, Address):
        return address
    text = address.strip()
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"unbalanced '[' in address {address!r}")
        host, rest = text[1:close], text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"unexpected text after ']' in address {address!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"no host in address {address!r}")
    if "://" in text or not _HOST.fullmatch(host):
        raise ValueError(
            f"invalid address {address!r}: expected host:port, [v6addr]:port or a bare host "
            "(no scheme such as lance://, no spaces or slashes)"
        )
    if not port_text:
        return Address(host, default_port)
    if not port_text.isdigit() or not 0 <= int(port_text) <= 0xFFFF:
        raise ValueError(f"invalid port in address {address!r}")
    return Address(host, int(port_text))


Addresses = str | Address | Sequence[str | Address]
"""Where to connect: `host:port`, `[v6]:port`, a bare host (port 1992), an `Address`, or a
list of them (seeds, tried in turn). Every connected object takes these forms."""


def address_list(address: Addresses) -> list[str | Address]:
    """The addresses of `address` as a list, in order.

    Raises:
        ValueError: An empty list.
    """
    items = [address] if isinstance(address, str | Address) else list(address)
    if not items:
        raise ValueError("no server address given")
    return items


@dataclass(frozen=True, slots=True)
class ReconnectConfig:
    """Exponential backoff with jitter between connection attempts.

    Attributes:
        base_delay_ms: Delay before the second attempt.
        max_delay_ms: Ceiling of the delay.
        max_attempts: Attempts before giving up, both for connecting (rounds over the
            addresses) and for one operation (tries, retries included); 0 means keep trying
            until the operation's own timeout runs out.
        jitter_factor: Each delay is spread uniformly by +/- this fraction.
        max_disconnected_s: Give up after this long without a connection: the next call
            (a consumer's `poll()`, a producer's sends) raises `DisconnectedError` instead of
            waiting on. 0 (the default) never gives up.
    """

    base_delay_ms: int = 100
    max_delay_ms: int = 30_000
    max_attempts: int = 0
    jitter_factor: float = 0.1
    max_disconnected_s: float = 0.0

    def __post_init__(self) -> None:
        if self.base_delay_ms < 0 or self.max_delay_ms < self.base_delay_ms:
            raise ValueError("need 0 <= base_delay_ms <= max_delay_ms")
        if self.max_attempts < 0 or not 0.0 <= self.jitter_factor <= 1.0:
            raise ValueError("need max_attempts >= 0 and 0 <= jitter_factor <= 1")
        if self.max_disconnected_s < 0:
            raise ValueError("need max_disconnected_s >= 0")

    def delay_for_attempt(self, attempt: int) -> float:
        """Return the delay in seconds before attempt number `attempt` (0 = first retry)."""
        exponent = min(attempt, 62)
        base = min(self.max_delay_ms, self.base_delay_ms * math.pow(2, exponent)) / 1000.0
        spread = base * self.jitter_factor
        return max(0.0, base + random.uniform(-spread, spread))


@dataclass(frozen=True, slots=True, kw_only=True)
class _ConnectionFields:
    """The connection fields every config shares with `ConnectionOptions` (keyword-only)."""

    connect_timeout_s: float = 10.0
    request_timeout_s: float = 30.0
    keepalive_interval_s: float = 10.0
    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None
    auth_token: str | None = None

    def __post_init__(self) -> None:
        _require_positive(
            connect_timeout_s=self.connect_timeout_s, request_timeout_s=self.request_timeout_s
        )
        _require_not_negative(keepalive_interval_s=self.keepalive_interval_s)


def _require_positive(**values: float) -> None:
    """Raise ValueError for a value that is not > 0 (NaN included)."""
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, not {value!r}")


def _require_not_negative(**values: float | None) -> None:
    """Raise ValueError for a value that is not None and not >= 0 (NaN included)."""
    for name, value in values.items():
        if value is not None and not value >= 0:
            raise ValueError(f"{name} must be >= 0, not {value!r}")


@dataclass(frozen=True, slots=True)
class ConnectionOptions(_ConnectionFields):
    """What one connection needs; built by the owners from their user-facing config.

    Attributes:
        connect_timeout_s: Bound on TCP (and TLS) connect plus authentication.
        request_timeout_s: Default bound on a control request.
        keepalive_interval_s: Idle time after which a keepalive is sent; 0 disables it.
        ssl_context: TLS context, or None for plain TCP.
        server_hostname: TLS server name (SNI and certificate check); defaults to the host.
        auth_token: Token sent with Authenticate (0x08) on connect, or None.
        max_frame_payload: Largest accepted incoming payload.
    """

    max_frame_payload: int = MAX_PAYLOAD_SIZE


@dataclass(frozen=True, slots=True, kw_only=True)
class _Builders(_ConnectionFields):
    """What the configs share: connection fields, `connection_options()`, `with_*` helpers.

    The fields are keyword-only, so each config's own fields keep their positions; each
    `with_*` helper returns a modified copy.
    """

    auto_reconnect: bool = True
    reconnect: ReconnectConfig = field(default_factory=ReconnectConfig)
    seeds: tuple[str, ...] = ()

    def connection_options(self) -> ConnectionOptions:
        """The per-connection part of this config."""
        return ConnectionOptions(
            connect_timeout_s=self.connect_timeout_s,
            request_timeout_s=self.request_timeout_s,
            keepalive_interval_s=self.keepalive_interval_s,
            ssl_context=self.ssl_context,
            server_hostname=self.server_hostname,
            auth_token=self.auth_token,
            max_frame_payload=self._max_frame_payload(),
        )

    def _max_frame_payload(self) -> int:
        return MAX_PAYLOAD_SIZE

    def with_connect_timeout(self, seconds: float) -> Self:
        """Return a copy with another connect timeout."""
        return replace(self, connect_timeout_s=seconds)

    def with_ssl(
        self, context: ssl.SSLContext | None, *, server_hostname: str | None = None
    ) -> Self:
        """Return a copy that connects with TLS (None for plain TCP)."""
        return replace(self, ssl_context=context, server_hostname=server_hostname)

    def with_auth_token(self, token: str | None) -> Self:
        """Return a copy that authenticates with `token` on every (re)connect."""
        return replace(self, auth_token=token)

    def with_auto_reconnect(self, enabled: bool = True) -> Self:
        """Return a copy with automatic reconnection on or off."""
        return replace(self, auto_reconnect=enabled)

    def with_reconnect(self, reconnect: ReconnectConfig) -> Self:
        """Return a copy with another reconnect backoff policy."""
        return replace(self, reconnect=reconnect)


@dataclass(frozen=True, slots=True)
class ClientConfig(_Builders):
    """Configuration of a `LanceClient` (admin operations).

    Attributes:
        host: Server host.
        port: Server port.
        connect_timeout_s: Bound on connecting (and authenticating).
        request_timeout_s: Bound on each request.
        keepalive_interval_s: Idle keepalive interval; 0 disables.
        ssl_context: TLS context, or None.
        server_hostname: TLS server name override.
        auth_token: Token for Authenticate on connect.
        seeds: Further `host:port` addresses tried in turn when the first is unreachable.
        auto_reconnect: Reconnect and retry retryable failures.
        reconnect: Backoff policy.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT

    @property
    def address(self) -> str:
        """The primary address as `host:port` (`[v6]:port` for IPv6 literals)."""
        return str(Address(self.host, self.port))

    def addresses(self) -> tuple[Address, ...]:
        """The primary address followed by the seeds, parsed."""
        return (Address(self.host, self.port), *(parse_address(s) for s in self.seeds))

    def with_host(self, host: str) -> ClientConfig:
        """Return a copy with another host."""
        return replace(self, host=host)

    def with_port(self, port: int) -> ClientConfig:
        """Return a copy with another port."""
        return replace(self, port=port)


class BufferFullPolicy(StrEnum):
    """What `Producer.send*` does when `buffer_memory` bytes are already waiting."""

    BLOCK = "block"
    """Wait (up to `max_block_s`) for acks to free memory, then raise `BackpressureError`."""
    RAISE = "raise"
    """Raise `BackpressureError` at once."""


@dataclass(frozen=True, slots=True)
class ProducerConfig(_Builders):
    """Configuration of a `Producer`.

    Attributes:
        batch_size: A topic's open batch is sent when it reaches this many bytes.
        linger_ms: ... or when its first record has waited this long.
        compression: Compress each batch into one LZ4 TLV envelope (consumers of this library
            decode it transparently; see docs/client.md).
        max_pending_acks: Batches in flight (sent, not yet acked) at most.
        connect_timeout_s: Bound on connecting.
        request_timeout_s: Bound on each ack (and on control requests).
        keepalive_interval_s: Idle keepalive interval; 0 disables.
        ssl_context: TLS context, or None.
        server_hostname: TLS server name override.
        auth_token: Token for Authenticate on every (re)connect.
        auto_reconnect: Reconnect after a lost connection and resend un-acked batches.
        reconnect: Backoff policy.
        seeds: Further addresses tried in turn.
        buffer_memory: Bytes of records buffered or in flight at most.
        buffer_full: What a send does when the buffer is full.
        max_block_s: Longest a send blocks on a full buffer (BLOCK policy).
        delivery_timeout_s: Longest a batch may take from send to ack, retries included.
    """

    batch_size: int = 32768
    linger_ms: int = 5
    compression: bool = False
    max_pending_acks: int = 64
    buffer_memory: int = 32 * 1024 * 1024
    buffer_full: BufferFullPolicy = BufferFullPolicy.BLOCK
    max_block_s: float = 60.0
    delivery_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        _ConnectionFields.__post_init__(self)
        _require_positive(delivery_timeout_s=self.delivery_timeout_s, max_block_s=self.max_block_s)
        if self.batch_size <= 0 or self.linger_ms < 0 or self.max_pending_acks <= 0:
            raise ValueError("need batch_size > 0, linger_ms >= 0 and max_pending_acks > 0")
        if self.buffer_memory < self.batch_size:
            raise ValueError("buffer_memory must be at least batch_size")

    def with_batch_size(self, size: int) -> ProducerConfig:
        """Return a copy with another batch size in bytes."""
        return replace(self, batch_size=size)

    def with_linger_ms(self, ms: int) -> ProducerConfig:
        """Return a copy with another linger time."""
        return replace(self, linger_ms=ms)

    def with_compression(self, enabled: bool = True) -> ProducerConfig:
        """Return a copy with TLV-level LZ4 compression on or off."""
        return replace(self, compression=enabled)

    def with_max_pending_acks(self, count: int) -> ProducerConfig:
        """Return a copy with another in-flight window."""
        return replace(self, max_pending_acks=count)

    def with_request_timeout(self, seconds: float) -> ProducerConfig:
        """Return a copy with another ack timeout."""
        return replace(self, request_timeout_s=seconds)


class SeekPosition(Enum):
    """Where a consumer starts when it has no committed offset."""

    BEGINNING = "beginning"
    END = "end"

    @staticmethod
    def offset(value: int) -> tuple[str, int]:
        """Return the 0.2.9-style `("offset", n)` start position."""
        if value < 0:
            raise ValueError("offsets are non-negative")
        return ("offset", value)


StartPosition = SeekPosition | tuple[str, int]


class StandaloneOptions(TypedDict, total=False):
    """The keyword options of `StandaloneConfig` (and of `with_topic_name`, `new_with_id`).

    Each is the `StandaloneConfig` attribute of the same name, except: `offset_dir` may be a
    `str`; `reconnect=None` means the default `ReconnectConfig()`; `start_offset=n` (when not
    None) sets `start_position` to `SeekPosition.offset(n)`.
    """

    max_fetch_bytes: int
    start_position: StartPosition
    offset_dir: str | Path | None
    auto_commit_interval_s: float | None
    connect_timeout_s: float
    request_timeout_s: float
    poll_timeout_s: float
    keepalive_interval_s: float
    poll_interval_ms: int
    ssl_context: ssl.SSLContext | None
    server_hostname: str | None
    auth_token: str | None
    auto_reconnect: bool
    reconnect: ReconnectConfig | None
    seeds: tuple[str, ...]
    server_side_offsets: bool
    catching_up_backoff_s: float
    catching_up_timeout_s: float | None
    prefetch: bool
    start_offset: int | None
    record_dialect: RecordDialect


_STANDALONE_DEFAULTS: Final[StandaloneOptions] = {
    "max_fetch_bytes": 1024 * 1024,
    "start_position": SeekPosition.BEGINNING,
    "offset_dir": None,
    "auto_commit_interval_s": 5.0,
    "connect_timeout_s": 10.0,
    "request_timeout_s": 30.0,
    "poll_timeout_s": 0.1,
    "keepalive_interval_s": 10.0,
    "poll_interval_ms": 50,
    "ssl_context": None,
    "server_hostname": None,
    "auth_token": None,
    "auto_reconnect": True,
    "reconnect": None,
    "seeds": (),
    "server_side_offsets": False,
    "catching_up_backoff_s": 0.5,
    "catching_up_timeout_s": 30.0,
    "prefetch": True,
    "start_offset": None,
    "record_dialect": RecordDialect.LNC,
}


@dataclass(frozen=True, slots=True, init=False)
class StandaloneConfig(_Builders):
    """Configuration of a `StandaloneConsumer`.

    Attributes:
        consumer_name: Names the consumer; its consumer id is derived from it (docs/client.md).
        topic_id: The topic by id (0 to resolve `topic_name`).
        topic_name: The topic by name, or None (an empty name is stored as None).
        max_fetch_bytes: Fetch window; grown automatically for a record larger than it.
        start_position: Where to start without a committed offset.
        offset_dir: Directory of the file offset store, or None for memory only.
        auto_commit_interval_s: Commit the offset this often while polling; None = manual.
        connect_timeout_s: Bound on connecting.
        request_timeout_s: Bound on each fetch or commit request.
        poll_timeout_s: Default time `poll()` waits for new records before returning None.
        keepalive_interval_s: Idle keepalive interval; 0 disables.
        poll_interval_ms: Pause between fetches that found nothing new.
        ssl_context: TLS context, or None.
        server_hostname: TLS server name override.
        auth_token: Token for Authenticate on every (re)connect.
        auto_reconnect: Reconnect after a lost connection and resume from the current offset.
        reconnect: Backoff policy.
        seeds: Further addresses tried in turn.
        server_side_offsets: Also Subscribe and CommitOffset on the server.
        catching_up_backoff_s: Pause after a CatchingUp reply before fetching again; it doubles
            with each further CatchingUp reply in a row, up to 16 times this value.
        catching_up_timeout_s: When the offset is still past the server's end this long after
            the first CatchingUp reply, `poll()` raises `ServerCatchingUpError` (seek to go on);
            None waits forever.
        prefetch: Send the next Fetch as soon as a full window arrives, so the server works
            while the caller handles the records (at most one fetch in flight).
        record_dialect: Who writes the topic: `RecordDialect.RUST` for topics written with
            Lance's Rust client (its 0x02 is Tombstone, 0x10 Compressed, 0xFF a 5-byte header).
    """

    consumer_name: str
    topic_id: int
    topic_name: str | None
    max_fetch_bytes: int
    start_position: StartPosition
    offset_dir: Path | None
    auto_commit_interval_s: float | None
    poll_timeout_s: float
    poll_interval_ms: int
    server_side_offsets: bool
    catching_up_backoff_s: float
    catching_up_timeout_s: float | None
    prefetch: bool
    record_dialect: RecordDialect

    def __init__(
        self,
        consumer_name: str = "",
        topic_id: int = 0,
        topic_name: str | None = None,
        **options: Unpack[StandaloneOptions],
    ) -> None:
        unknown = sorted(options.keys() - _STANDALONE_DEFAULTS.keys())
        if unknown:
            raise TypeError(f"unknown StandaloneConfig option(s): {', '.join(unknown)}")
        merged: StandaloneOptions = {**_STANDALONE_DEFAULTS, **options}
        if topic_name:
            validate_topic_name(topic_name)
        if topic_id < 0 or merged["max_fetch_bytes"] <= 0 or merged["poll_interval_ms"] < 0:
            raise ValueError("need topic_id >= 0, max_fetch_bytes > 0 and poll_interval_ms >= 0")
        start_offset = merged.pop("start_offset")
        if start_offset is not None:
            merged["start_position"] = SeekPosition.offset(start_offset)
        offset_dir = merged["offset_dir"]
        merged["offset_dir"] = Path(offset_dir) if offset_dir is not None else None
        merged["reconnect"] = merged["reconnect"] or ReconnectConfig()
        merged["seeds"] = tuple(merged["seeds"])
        merged["record_dialect"] = RecordDialect(merged["record_dialect"])
        values = {
            "consumer_name": consumer_name,
            "topic_id": topic_id,
            "topic_name": topic_name or None,
        }
        for name, value in (*values.items(), *merged.items()):
            object.__setattr__(self, name, value)
        self.__post_init__()
        _require_not_negative(
            poll_timeout_s=merged["poll_timeout_s"],
            catching_up_backoff_s=merged["catching_up_backoff_s"],
            catching_up_timeout_s=merged["catching_up_timeout_s"],
            auto_commit_interval_s=merged["auto_commit_interval_s"],
        )

    @classmethod
    def with_topic_name(
        cls, consumer_name: str, topic_name: str, **options: Unpack[StandaloneOptions]
    ) -> StandaloneConfig:
        """Return a config addressing the topic by name (resolved on connect)."""
        return cls(consumer_name, 0, topic_name, **options)

    @classmethod
    def new_with_id(
        cls,
        consumer_name: str,
        topic_name: str,
        topic_id: int,
        **options: Unpack[StandaloneOptions],
    ) -> StandaloneConfig:
        """Return a config with both the topic's name and id."""
        return cls(consumer_name, topic_id, topic_name, **options)

    def with_max_fetch_bytes(self, size: int) -> StandaloneConfig:
        """Return a copy with another fetch window."""
        return replace(self, max_fetch_bytes=size)

    def with_start_position(self, position: StartPosition) -> StandaloneConfig:
        """Return a copy with another start position."""
        return replace(self, start_position=position)

    def with_offset_dir(self, path: str | Path | None) -> StandaloneConfig:
        """Return a copy persisting offsets in files under `path`."""
        return replace(self, offset_dir=Path(path) if path is not None else None)

    def with_auto_commit_interval(self, seconds: float | None) -> StandaloneConfig:
        """Return a copy auto-committing every `seconds` (None: manual commits only)."""
        return replace(self, auto_commit_interval_s=seconds)

    def with_manual_commit(self) -> StandaloneConfig:
        """Return a copy with auto-commit off."""
        return replace(self, auto_commit_interval_s=None)

    def with_poll_timeout(self, seconds: float) -> StandaloneConfig:
        """Return a copy with another default poll timeout."""
        return replace(self, poll_timeout_s=seconds)

    @property
    def start_offset(self) -> int:
        """The start position as a byte offset: 0 for BEGINNING, `TAIL_OFFSET` for END.

        END is the u64::MAX tail offset the server resolves to the topic's end (lnc-client
        0.2.9 gave 2**63-1 here, which the server reads as a real, far-away offset).
        """
        position = self.start_position
        if isinstance(position, tuple):
            return position[1]
        return TAIL_OFFSET if position is SeekPosition.END else 0

    def _max_frame_payload(self) -> int:
        return max(MAX_PAYLOAD_SIZE, self.max_fetch_bytes) + 16
