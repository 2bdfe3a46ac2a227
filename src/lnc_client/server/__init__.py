"""The embedded, durable, Lance-compatible LWP server (`lnc serve`).

It speaks LWP exactly as the real Lance server does in standalone mode (PROTOCOL.md) and keeps
data in the real on-disk layout. Entry points:

* `LanceServer`: asyncio; `async with LanceServer(data_dir, port=0) as server: server.address`.
* `ServerThread`: the same on a background thread, for blocking code and tests.
* `ServerConfig` / `load_config`: configuration, also from a TOML file shaped like lance.toml.
* `FaultConfig`: fault-injection switches, changeable on a running server.

Layers: `session` (one connection) -> `commands` (control frames) -> `storage` (topics, segment
logs, the group-commit writer, recovery, retention). The server imports `protocol` and `errors`,
never the client modules.
"""

from lnc_client.server.app import LanceServer, ServerOptions, ServerThread
from lnc_client.server.config import (
    AuthConfig,
    ConfigError,
    FaultConfig,
    ServerConfig,
    TlsConfig,
    load_config,
)

__all__ = [
    "AuthConfig",
    "ConfigError",
    "FaultConfig",
    "LanceServer",
    "ServerConfig",
    "ServerOptions",
    "ServerThread",
    "TlsConfig",
    "load_config",
]
