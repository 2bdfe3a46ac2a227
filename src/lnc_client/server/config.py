"""Server configuration: frozen dataclasses, and loading them from a TOML file.

Values flow one way: a TOML file (`load_config`) and/or keyword arguments build one frozen
`ServerConfig`, which `LanceServer` reads at start. Only `FaultConfig` can change while a server
runs (`LanceServer.faults = ...`); sessions read it at each use.

The TOML layout mirrors the real server's `lance.toml` where a setting exists there
(`listen_addr`, `data_dir`, `retention_cleanup_interval_secs`, `[ingestion] max_payload_size`,
`[io] segment_max_size`, `[auth]`, `[tls]`); settings the real server does not have live in
`[server]` and `[faults]`. A key the real server knows but we do not use (`node_id`,
`[wal]`, `[monitoring]`, ...) is accepted and logged as ignored; any other key is refused with
its name, so a typo never passes for a setting.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, TypedDict, Unpack, cast

from lnc_client.protocol.control import FETCH_RESPONSE_HEADER_SIZE
from lnc_client.protocol.frame import DEFAULT_PORT, HEADER_SIZE, MAX_PAYLOAD_SIZE

__all__ = [
    "DEFAULT_FETCH_WINDOW_CAP",
    "AuthConfig",
    "ConfigError",
    "FaultConfig",
    "ServerConfig",
    "ServerConfigChanges",
    "TlsConfig",
    "load_config",
]

_log = logging.getLogger(__name__)

_SERVER_KEYS: Final = (
    "idle_timeout_secs",
    "fetch_window_cap",
    "inflight_bytes_per_connection",
    "writer_queue_max_bytes",
    "read_buffer_bytes",
    "write_buffer_high_bytes",
    "max_consumer_offsets",
    "max_connections",
    "frame_timeout_secs",
    "max_buffered_bytes_total",
    "max_unauthenticated_payload",
)
_FAULT_KEYS: Final = (
    "backpressure_every_n_acks",
    "ack_delay_ms",
    "drop_after_frames",
    "max_fetch_bytes",
)
_KNOWN_KEYS: Final[dict[str, frozenset[str]]] = {
    "": frozenset(
        (
            "data_dir",
            "listen_addr",
            "metrics_addr",
            "health_addr",
            "retention_cleanup_interval_secs",
            "ingestion",
            "io",
            "server",
            "auth",
            "tls",
            "faults",
        )
    ),
    "ingestion": frozenset(("max_payload_size",)),
    "io": frozenset(("segment_max_size",)),
    "server": frozenset(_SERVER_KEYS),
    "auth": frozenset(("enabled", "tokens", "token_file", "write_only", "max_failures")),
    "tls": frozenset(("enabled", "cert_path", "key_path", "ca_path", "require_client_cert")),
    "faults": frozenset((*_FAULT_KEYS, "disk_full")),
}
_REAL_ONLY_KEYS: Final[dict[str, frozenset[str]]] = {
    "": frozenset(
        (
            "node_id",
            "replication_addr",
            "replication_mode",
            "peers",
            "wal",
            "monitoring",
            "replication_quorum_timeout_ms",
            "consumer_rate_limit_bytes_per_sec",
            "data_replication_channel_capacity",
            "replication_max_inflight",
            "coordinator_pin_core",
            "forwarder_pin_core",
        )
    ),
    "ingestion": frozenset(
        ("batch_pool_size", "batch_capacity", "channel_capacity", "actor_count", "pin_cores")
    ),
    "io": frozenset(("ring_size", "sparse_index_interval")),
}
"""Keys of the real `lance.toml` (lance/src/config.rs) that the embedded server does not use."""

DEFAULT_FETCH_WINDOW_CAP: Final = MAX_PAYLOAD_SIZE - HEADER_SIZE - FETCH_RESPONSE_HEADER_SIZE
"""Largest Fetch window by default: the whole response frame fits a client's 16 MiB cap."""


class ConfigError(ValueError):
    """A configuration file or value is invalid."""


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Fault-injection switches for tests; every one is off (0) by default.

    Set them per server (`LanceServer(..., faults=FaultConfig(...))`) and change them while the
    server runs (`server.faults = FaultConfig(...)`): sessions read the current value each time
    they use it, so a test can slow down, break or heal a server mid-stream.

    Attributes:
        backpressure_every_n_acks: After every N Acks a connection sends, also send one
            Backpressure frame (flags 0x10). The real server never sends Backpressure.
        ack_delay_ms: Hold each read chunk's Acks this long after the data is durable
            (order is kept).
        drop_after_frames: Abort a connection (no reply, TCP reset) when it has received this
            many frames in total; the frame that reaches the count is not processed.
        max_fetch_bytes: Cap every Fetch window at this many bytes (the response stays a valid
            raw window, just shorter).
        disk_full: Every ingest write fails with ENOSPC after its bytes were written and
            before the sync (they are cut back), as on a full disk, until switched off.
    """

    backpressure_every_n_acks: int = 0
    ack_delay_ms: float = 0.0
    drop_after_frames: int = 0
    max_fetch_bytes: int = 0
    disk_full: bool = False

    def __post_init__(self) -> None:
        """Reject negative values."""
        if (
            min(
                self.backpressure_every_n_acks,
                self.ack_delay_ms,
                self.drop_after_frames,
                self.max_fetch_bytes,
            )
            < 0
        ):
            raise ConfigError("fault switches must be >= 0")


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Token authentication, as the real server's `[auth]` section.

    Attributes:
        enabled: Turn token auth on. Every command but Authenticate, and ingest, is refused
            with `Authentication required` until the connection authenticated (the real
            server gates only ingest, PROTOCOL.md §9: docs/compatibility.md).
        tokens: Accepted tokens.
        token_file: A file with one token per line (blank lines and `#` comments skipped).
        write_only: The real server's inverted switch: when true, unauthenticated ingest is
            *allowed*. Copied on purpose (docs/compatibility.md).
        max_failures: Refused Authenticate attempts after which the connection is closed.
    """

    enabled: bool = False
    tokens: tuple[str, ...] = ()
    token_file: Path | None = None
    write_only: bool = False
    max_failures: int = 3

    def load_tokens(self) -> frozenset[str]:
        """Return every accepted token (config plus file); reads the token file.

        Raises:
            ConfigError: Auth is enabled but no token is configured, or the file is unreadable.
        """
        if not self.enabled:
            return frozenset()
        tokens = {t for t in self.tokens if t}
        if self.token_file is not None:
            try:
                text = self.token_file.read_text()
            except OSError as error:
                raise ConfigError(f"token file {self.token_file}: {error}") from error
            for line in text.splitlines():
                token = line.strip()
                if token and not token.startswith("#"):
                    tokens.add(token)
        if not tokens:
            raise ConfigError("auth is enabled but no tokens are configured")
        return frozenset(tokens)


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS on the client port (the real server has none; off by default).

    Attributes:
        enabled: Wrap every accepted connection in TLS.
        cert_path: Server certificate chain (PEM).
        key_path: Server private key (PEM).
        ca_path: CA bundle used to verify client certificates.
        require_client_cert: Refuse clients without a certificate signed by `ca_path`.
    """

    enabled: bool = False
    cert_path: Path | None = None
    key_path: Path | None = None
    ca_path: Path | None = None
    require_client_cert: bool = False


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything a `LanceServer` needs.

    Attributes:
        data_dir: Root of the on-disk layout (`segments/<topic name>/...`).
        host: Address to listen on.
        port: TCP port; 0 picks a free one.
        segment_max_bytes: Rotate a topic's segment once it reaches this size (real:
            `[io] segment_max_size`, default 1 GiB).
        max_payload_size: Largest accepted payload; larger closes the connection.
        retention_interval_secs: Seconds between retention passes; the first runs at start.
        idle_timeout_secs: Close connections silent this long; 0 (the real behaviour) never.
        fetch_window_cap: Largest Fetch window served (see docs/compatibility.md).
        inflight_bytes_per_connection: How many bytes of un-acked ingest one connection may
            have before the server stops reading it. 0 is the real server's strict mode: stop
            reading after every read until its Acks are out.
        writer_queue_max_bytes: Bytes queued for the disk writer (all connections) above which
            connections stop being read.
        read_buffer_bytes: Receive buffer per connection (the real server's 256 KiB).
        write_buffer_high_bytes: Unsent reply bytes above which a connection stops being read.
        max_consumer_offsets: Most (topic, consumer) entries kept for CommitOffset, and for
            Subscribe; past it the least recently written is forgotten.
        max_connections: Open connections above which a new one is closed at once.
        frame_timeout_secs: A frame begun but not complete this long (while the server reads)
            closes the connection; 0 never.
        max_buffered_bytes_total: Receive-buffer bytes of all connections together above which
            the connection whose buffer grows is closed.
        max_unauthenticated_payload: With auth on (and `write_only` off), the largest frame
            payload a connection may send before it authenticated.
        auth: Token authentication.
        tls: TLS settings.
        faults: Initial fault switches.
        metrics_addr: `host:port` of the Prometheus endpoint (`/metrics`), port 0 for a free
            one; None (the default) serves none. The real server's default is `0.0.0.0:9090`.
        health_addr: `host:port` of the health endpoint (`/health/live`, `/health/ready`, ...);
            None serves none. The real server's default is `0.0.0.0:8080`.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    segment_max_bytes: int = 1024 * 1024 * 1024
    max_payload_size: int = MAX_PAYLOAD_SIZE
    retention_interval_secs: float = 60.0
    idle_timeout_secs: float = 0.0
    fetch_window_cap: int = DEFAULT_FETCH_WINDOW_CAP
    inflight_bytes_per_connection: int = 8 * 1024 * 1024
    writer_queue_max_bytes: int = 64 * 1024 * 1024
    read_buffer_bytes: int = 256 * 1024
    write_buffer_high_bytes: int = 4 * 1024 * 1024
    max_consumer_offsets: int = 65536
    max_connections: int = 1024
    frame_timeout_secs: float = 30.0
    max_buffered_bytes_total: int = 256 * 1024 * 1024
    max_unauthenticated_payload: int = 64 * 1024
    auth: AuthConfig = field(default_factory=AuthConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)
    metrics_addr: str | None = None
    health_addr: str | None = None

    def __post_init__(self) -> None:
        """Check ranges."""
        if not 0 <= self.port <= 0xFFFF:
            raise ConfigError(f"port {self.port} out of range")
        if self.segment_max_bytes < 1 or self.max_payload_size < 0:
            raise ConfigError("segment_max_bytes must be >= 1 and max_payload_size >= 0")
        if self.retention_interval_secs <= 0 or self.idle_timeout_secs < 0:
            raise ConfigError("retention interval must be > 0 and idle timeout >= 0")
        if self.fetch_window_cap < 1 or self.inflight_bytes_per_connection < 0:
            raise ConfigError("fetch_window_cap must be >= 1 and inflight limits >= 0")
        if self.read_buffer_bytes < HEADER_SIZE or self.writer_queue_max_bytes < 1:
            raise ConfigError("read_buffer_bytes must be >= 44 and writer_queue_max_bytes >= 1")
        if min(self.max_consumer_offsets, self.max_connections) < 1:
            raise ConfigError("max_consumer_offsets and max_connections must be >= 1")
        if self.frame_timeout_secs < 0 or self.max_unauthenticated_payload < 0:
            raise ConfigError("frame_timeout_secs and max_unauthenticated_payload must be >= 0")
        if self.max_buffered_bytes_total < self.read_buffer_bytes:
            raise ConfigError("max_buffered_bytes_total must be >= read_buffer_bytes")
        if self.tls.enabled and (self.tls.cert_path is None or self.tls.key_path is None):
            raise ConfigError("TLS needs cert_path and key_path")
        if self.tls.require_client_cert and self.tls.ca_path is None:
            raise ConfigError("require_client_cert needs ca_path")

    def with_changes(self, **changes: Unpack[ServerConfigChanges]) -> ServerConfig:
        """Return a copy with some fields replaced (`dataclasses.replace`)."""
        return replace(self, **changes)


class ServerConfigChanges(TypedDict, total=False):
    """`ServerConfig` fields by name, each optional: what `with_changes` and `load_config` take.

    Each key is the `ServerConfig` attribute of the same name and type.
    """

    data_dir: Path
    host: str
    port: int
    segment_max_bytes: int
    max_payload_size: int
    retention_interval_secs: float
    idle_timeout_secs: float
    fetch_window_cap: int
    inflight_bytes_per_connection: int
    writer_queue_max_bytes: int
    read_buffer_bytes: int
    write_buffer_high_bytes: int
    max_consumer_offsets: int
    max_connections: int
    frame_timeout_secs: float
    max_buffered_bytes_total: int
    max_unauthenticated_payload: int
    auth: AuthConfig
    tls: TlsConfig
    faults: FaultConfig
    metrics_addr: str | None
    health_addr: str | None


def _table(doc: dict[str, object], key: str) -> dict[str, object]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table")
    return value


def _typed(table: dict[str, object], key: str, kind: type | tuple[type, ...], where: str) -> object:
    value = table[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ConfigError(f"{where}{key}: expected a number, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}{key}: wrong type {type(value).__name__}")
    return value


def _pick(
    table: dict[str, object],
    names: dict[str, str],
    kind: type | tuple[type, ...],
    where: str,
) -> dict[str, object]:
    return {
        ours: _typed(table, theirs, kind, where)
        for theirs, ours in names.items()
        if theirs in table
    }


def _paths(values: dict[str, object]) -> dict[str, object]:
    return {k: Path(str(v)) if k.endswith(("_path", "_file")) else v for k, v in values.items()}


def _check_keys(doc: dict[str, object]) -> None:
    """Refuse a key neither we nor the real server know; log the real-only ones as ignored."""
    for section, known in _KNOWN_KEYS.items():
        table = doc if not section else doc.get(section, {})
        if not isinstance(table, dict):
            continue
        where = f"{section}." if section else ""
        real_only = _REAL_ONLY_KEYS.get(section, frozenset())
        for key in table:
            if key in real_only:
                _log.info("config key %s%s is a real-server setting, ignored here", where, key)
            elif key not in known:
                raise ConfigError(f"unknown config key {where}{key}")


def load_config(path: Path, **overrides: Unpack[ServerConfigChanges]) -> ServerConfig:
    """Build a `ServerConfig` from a TOML file, then apply keyword overrides.

    Args:
        path: The TOML file.
        **overrides: `ServerConfig` fields that win over the file (for example from flags).

    Raises:
        ConfigError: The file is unreadable, not TOML, has an unknown key, or a value has
            the wrong type.
    """
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: {error}") from error
    try:
        _check_keys(doc)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    values: dict[str, object] = {}
    if "data_dir" in doc:
        values["data_dir"] = Path(str(_typed(doc, "data_dir", str, "")))
    for key in ("metrics_addr", "health_addr"):
        if key in doc:
            values[key] = str(_typed(doc, key, str, ""))
    if "listen_addr" in doc:
        host, _, port = str(_typed(doc, "listen_addr", str, "")).rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"listen_addr {doc['listen_addr']!r} is not host:port")
        values["host"], values["port"] = host.strip("[]"), int(port)
    values |= _pick(
        doc, {"retention_cleanup_interval_secs": "retention_interval_secs"}, (int, float), ""
    )
    values |= _pick(
        _table(doc, "ingestion"), {"max_payload_size": "max_payload_size"}, int, "ingestion."
    )
    values |= _pick(_table(doc, "io"), {"segment_max_size": "segment_max_bytes"}, int, "io.")
    server_names = {name: name for name in _SERVER_KEYS}
    values |= _pick(_table(doc, "server"), server_names, (int, float), "server.")
    auth = _table(doc, "auth")
    auth_values = _pick(auth, {"enabled": "enabled", "write_only": "write_only"}, bool, "auth.")
    auth_values |= _pick(auth, {"token_file": "token_file"}, str, "auth.")
    auth_values |= _pick(auth, {"max_failures": "max_failures"}, int, "auth.")
    if "tokens" in auth:
        tokens = _typed(auth, "tokens", list, "auth.")
        assert isinstance(tokens, list)
        auth_values["tokens"] = tuple(str(t) for t in tokens)
    values["auth"] = AuthConfig(**_paths(auth_values))  # type: ignore[arg-type]  # _pick checked
    tls = _table(doc, "tls")
    tls_values = _pick(
        tls, {"enabled": "enabled", "require_client_cert": "require_client_cert"}, bool, "tls."
    )
    tls_values |= _pick(tls, {k: k for k in ("cert_path", "key_path", "ca_path")}, str, "tls.")
    values["tls"] = TlsConfig(**_paths(tls_values))  # type: ignore[arg-type]  # _pick checked
    fault_names = {k: k for k in _FAULT_KEYS}
    fault_values = _pick(_table(doc, "faults"), fault_names, (int, float), "faults.")
    fault_values |= _pick(_table(doc, "faults"), {"disk_full": "disk_full"}, bool, "faults.")
    values["faults"] = FaultConfig(**fault_values)  # type: ignore[arg-type]  # _pick checked
    # every key is a ServerConfig field and every value was type-checked by _pick/_typed above
    changes: ServerConfigChanges = {**cast("ServerConfigChanges", values), **overrides}
    return new_config(changes)


def new_config(changes: ServerConfigChanges) -> ServerConfig:
    """A `ServerConfig` from field values (`data_dir` defaults to `./data`).

    Raises:
        ConfigError: A key that is not a field (from a caller that is not type-checked).
    """
    try:
        return ServerConfig(data_dir=Path("data")).with_changes(**changes)
    except TypeError as error:
        raise ConfigError(str(error)) from error
