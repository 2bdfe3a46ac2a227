"""What every `lnc` command shares: server options, topic arguments, formatting, errors.

Data flow: a command's parser gets its options from `add_server_options` (address, seeds, TLS,
token, timeouts) and `topic_arg` (a topic by id or by name); its handler turns the parsed
options into an `Endpoint` (`endpoint(args)`), which builds the library's configs
(`ClientConfig`, `ProducerConfig`, `StandaloneConfig`) with the same connection settings. The
server address comes from `-s/--server`, else `$LNC_SERVER`, else `127.0.0.1:1992`; the token
from `--token-file`, else `$LNC_TOKEN` (never from the command line itself). Output helpers
print exactly what Lance's own Rust `lnc` prints (`format_bytes`, `hexdump`, `utc_time`), so
scripts reading either get the same text. `CliError` is a user error: `main` prints it as one
line and exits 1.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO, TypeAlias, TypeVar

from lnc_client.admin import LanceClient
from lnc_client.config import (
    Address,
    ClientConfig,
    ProducerConfig,
    ReconnectConfig,
    StandaloneConfig,
    StartPosition,
    parse_address,
)

if TYPE_CHECKING:
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
    """What `ArgumentParser.add_subparsers()` returns; each command module adds to it."""

__all__ = [
    "DEFAULT_SERVER",
    "ENV_SERVER",
    "ENV_TOKEN",
    "CliError",
    "Endpoint",
    "Progress",
    "add_server_options",
    "endpoint",
    "format_bytes",
    "hexdump",
    "topic_arg",
    "utc_time",
]

DEFAULT_SERVER: Final = "127.0.0.1:1992"
ENV_SERVER: Final = "LNC_SERVER"
ENV_TOKEN: Final = "LNC_TOKEN"  # noqa: S105 (a variable name, not a secret)
_C = TypeVar("_C", ClientConfig, ProducerConfig, StandaloneConfig)
_CLI_RECONNECT: Final = ReconnectConfig(base_delay_ms=100, max_delay_ms=1000, max_attempts=3)
"""A command line fails soon on a server that is not there (three tries, then the error)."""


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def topic_arg(text: str) -> int | str:
    """Parse a topic argument: a number is an id, anything else a name."""
    if text.isdigit():
        return int(text)
    if not text:
        raise argparse.ArgumentTypeError("a topic is an id or a name, not empty")
    return text


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """Add `-s/--server` and the connection options (TLS, token, timeouts) to `parser`."""
    parser.add_argument(
        "-s",
        "--server",
        metavar="ADDR",
        help=f"server address host:port, [v6]:port or a comma-separated seed list "
        f"(default: ${ENV_SERVER} or {DEFAULT_SERVER})",
    )
    group = parser.add_argument_group("connection")
    group.add_argument("--tls", action="store_true", help="connect with TLS")
    group.add_argument("--tls-ca", type=Path, metavar="FILE", help="CA bundle (PEM); implies TLS")
    group.add_argument(
        "--tls-cert", type=Path, metavar="FILE", help="client certificate (PEM); implies TLS"
    )
    group.add_argument("--tls-key", type=Path, metavar="FILE", help="client private key (PEM)")
    group.add_argument(
        "--tls-server-name", metavar="NAME", help="name to verify in the server certificate"
    )
    group.add_argument(
        "--tls-insecure", action="store_true", help="do not verify the server certificate"
    )
    group.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help=f"file holding the auth token (default: ${ENV_TOKEN} if set)",
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="bound on each request (default 30)",
    )


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to connect, shared by every config a command builds.

    Attributes:
        text: The address as the user gave it (printed back as the Rust CLI does).
        address: The first address.
        seeds: Further addresses tried when the first is unreachable.
        ssl_context: TLS context, or None for plain TCP.
        server_hostname: TLS name override.
        token: Auth token, or None.
        timeout_s: Request timeout.
    """

    text: str
    address: Address
    seeds: tuple[str, ...]
    ssl_context: ssl.SSLContext | None
    server_hostname: str | None
    token: str | None
    timeout_s: float

    @property
    def connect_timeout_s(self) -> float:
        """Bound on connecting: the request timeout, at most 10 s."""
        return min(self.timeout_s, 10.0)

    def _connecting(self, config: _C) -> _C:
        """`config` with this endpoint's TLS, token, connect timeout and reconnect policy."""
        return (
            config.with_ssl(self.ssl_context, server_hostname=self.server_hostname)
            .with_auth_token(self.token)
            .with_connect_timeout(self.connect_timeout_s)
            .with_reconnect(_CLI_RECONNECT)
        )

    def client_config(self) -> ClientConfig:
        """A `ClientConfig` for `LanceClient`."""
        host, port = self.address.host, self.address.port
        return self._connecting(
            ClientConfig(host, port, seeds=self.seeds, request_timeout_s=self.timeout_s)
        )

    def client(self) -> LanceClient:
        """A `LanceClient` for this endpoint (use it with `async with`)."""
        return LanceClient(self.client_config())

    @classmethod
    def plain(cls, address: str) -> Endpoint:
        """A plain TCP endpoint without token (the demo's own server)."""
        return cls(address, parse_address(address), (), None, None, None, 30.0)

    def producer_config(
        self, *, batch_size: int, linger_ms: int, buffer_memory: int = 32 * 1024 * 1024
    ) -> ProducerConfig:
        """A `ProducerConfig` with this endpoint's connection settings."""
        config = ProducerConfig(
            batch_size=batch_size,
            linger_ms=linger_ms,
            buffer_memory=buffer_memory,
            seeds=self.seeds,
            request_timeout_s=self.timeout_s,
        )
        return self._connecting(config)

    def consumer_config(
        self,
        topic_id: int,
        *,
        start_position: StartPosition,
        max_fetch_bytes: int,
        poll_timeout_s: float,
    ) -> StandaloneConfig:
        """A `StandaloneConfig` (no offset store, no commits) reading `topic_id`."""
        config = StandaloneConfig(
            "lnc-cli",
            topic_id,
            max_fetch_bytes=max_fetch_bytes,
            start_position=start_position,
            auto_commit_interval_s=None,
            poll_timeout_s=poll_timeout_s,
            seeds=self.seeds,
            request_timeout_s=self.timeout_s,
            catching_up_timeout_s=None,
        )
        return self._connecting(config)


def endpoint(args: argparse.Namespace) -> Endpoint:
    """The `Endpoint` described by the options of `add_server_options`.

    Raises:
        CliError: A malformed address, an unreadable certificate or token file.
    """
    text = args.server or os.environ.get(ENV_SERVER) or DEFAULT_SERVER
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise CliError(f"no server address in {text!r}")
    try:
        first = parse_address(parts[0])
        for seed in parts[1:]:
            parse_address(seed)
    except ValueError as error:
        raise CliError(str(error)) from None
    token = os.environ.get(ENV_TOKEN) or None
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as error:
            raise CliError(f"cannot read token file: {error}") from None
    return Endpoint(
        text=text,
        address=first,
        seeds=tuple(parts[1:]),
        ssl_context=_ssl_context(args),
        server_hostname=args.tls_server_name,
        token=token,
        timeout_s=args.timeout,
    )


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not (args.tls or args.tls_ca or args.tls_cert or args.tls_insecure):
        return None
    try:
        context = ssl.create_default_context(cafile=args.tls_ca)
        if args.tls_cert is not None:
            context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as error:
        raise CliError(f"TLS setup failed: {error}") from None
    if args.tls_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


_UNITS: Final = (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2), ("KB", 1024))


def format_bytes(size: int) -> str:
    """`97.66 KB`, `5 bytes`: sizes as the Rust CLI prints them."""
    for unit, scale in _UNITS:
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} bytes"


def utc_time(seconds: int, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A Unix time as UTC text (as the Rust CLI prints creation times)."""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime(fmt)
    except (OverflowError, OSError, ValueError):
        return "unknown"


def hexdump(data: bytes | memoryview) -> str:
    """The Rust CLI's hex dump: offset, 16 bytes in two groups of 8, printable ASCII."""
    lines = []
    view = bytes(data)
    for start in range(0, len(view), 16):
        chunk = view[start : start + 16]
        cells = " ".join(f"{byte:02x}" for byte in chunk[:8])
        if len(chunk) > 8:
            cells += "  " + " ".join(f"{byte:02x}" for byte in chunk[8:])
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{start:08x}  {cells:<49} |{text}|")
    return "\n".join(lines)


class Progress:
    """A one-line progress bar on a terminal stream (silent when it is not a terminal).

    Args:
        label: What is counted ("produce", "consume").
        total: The count at 100 %.
        stream: Where to draw (default stderr).
        force: Draw even when `stream` is not a terminal (tests).
    """

    _WIDTH: Final = 30
    _INTERVAL_S: Final = 0.1

    def __init__(
        self, label: str, total: int, *, stream: TextIO | None = None, force: bool = False
    ) -> None:
        self.label = label
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.enabled = force or self.stream.isatty()
        self._started = time.perf_counter()
        self._last_draw = 0.0

    def update(self, done: int) -> None:
        """Redraw with `done` items done (at most every 0.1 s, and always at 100 %)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last_draw < self._INTERVAL_S and done < self.total:
            return
        self._last_draw = now
        fraction = min(done / self.total, 1.0)
        filled = round(fraction * self._WIDTH)
        rate = done / max(now - self._started, 1e-9)
        bar = "#" * filled + "-" * (self._WIDTH - filled)
        self.stream.write(
            f"\r{self.label:<8} [{bar}] {fraction:6.1%} {done:,}/{self.total:,} {rate:,.0f}/s"
        )
        self.stream.flush()

    def finish(self) -> None:
        """End the bar's line."""
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
