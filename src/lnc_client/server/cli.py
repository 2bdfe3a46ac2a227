"""`lnc serve` / `python -m lnc_client.server`: run the embedded server until a signal.

Flags, the `LNC_AUTH_TOKEN` environment variable and an optional TOML config file (`--config`,
see docs/server.md) become one `ServerConfig`: flags win over the file. A token given with
`--auth-token` is visible to every local user in `ps`, so a warning is printed; the token file
or the environment variable keep it out of the process list. The process prints
`listening on HOST:PORT` on stdout (flushed, so a parent can read the port chosen by
`--port 0`), serves until SIGINT or SIGTERM, then shuts down cleanly (segments closed) and
returns 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from lnc_client.protocol.frame import DEFAULT_PORT
from lnc_client.server.app import LanceServer
from lnc_client.server.config import (
    AuthConfig,
    ConfigError,
    FaultConfig,
    ServerConfig,
    ServerConfigChanges,
    TlsConfig,
    load_config,
    new_config,
)

__all__ = ["AUTH_TOKEN_ENV", "add_serve_parser", "build_config", "main", "run_serve"]

AUTH_TOKEN_ENV = "LNC_AUTH_TOKEN"  # noqa: S105 - the variable's name, not a secret
"""Environment variable with the accepted token(s), comma-separated; turns token auth on."""

_SERVE_HELP = "Run the embedded Lance-compatible server."


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", "-d", type=Path, help="data directory (default ./data)")
    parser.add_argument("--host", help="listen address (default 127.0.0.1)")
    parser.add_argument(
        "--port", "-p", type=int, help=f"TCP port, 0 = any free (default {DEFAULT_PORT})"
    )
    parser.add_argument("--config", "-c", type=Path, help="TOML config file (lance.toml layout)")
    parser.add_argument("--segment-max-bytes", type=int, help="rotate segments at this size")
    parser.add_argument("--max-payload-size", type=int, help="largest accepted payload")
    parser.add_argument(
        "--retention-interval-secs", type=float, help="seconds between retention passes"
    )
    parser.add_argument(
        "--idle-timeout-secs", type=float, help="close idle connections (0 = never)"
    )
    parser.add_argument(
        "--metrics",
        metavar="ADDR",
        help="serve Prometheus metrics on HOST:PORT at /metrics (the real server: 0.0.0.0:9090)",
    )
    parser.add_argument(
        "--health",
        metavar="ADDR",
        help="serve /health/live, /health/ready, ... on HOST:PORT (the real server: 0.0.0.0:8080)",
    )
    parser.add_argument(
        "--auth-token",
        action="append",
        help="enable token auth; repeatable. Visible to every local user in `ps`: prefer "
        f"--auth-token-file or the {AUTH_TOKEN_ENV} environment variable",
    )
    parser.add_argument("--auth-token-file", type=Path, help="enable token auth; one token a line")
    parser.add_argument("--tls-cert", type=Path, help="enable TLS with this certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="TLS private key (PEM)")
    parser.add_argument("--tls-ca", type=Path, help="CA bundle to verify client certificates")
    parser.add_argument(
        "--tls-require-client-cert", action="store_true", help="require a client certificate"
    )
    faults = parser.add_argument_group("fault injection (tests only)")
    faults.add_argument("--fault-backpressure-every", type=int, metavar="N", default=0)
    faults.add_argument("--fault-ack-delay-ms", type=float, metavar="MS", default=0.0)
    faults.add_argument("--fault-drop-after-frames", type=int, metavar="N", default=0)
    faults.add_argument("--fault-max-fetch-bytes", type=int, metavar="N", default=0)
    faults.add_argument(
        "--fault-disk-full", action="store_true", help="every ingest write fails with ENOSPC"
    )


def add_serve_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the `serve` subcommand to an argparse subparsers object and return its parser.

    Args:
        subparsers: The object returned by `ArgumentParser.add_subparsers()`.
    """
    parser = subparsers.add_parser("serve", help=_SERVE_HELP, description=_SERVE_HELP)
    _add_arguments(parser)
    return parser


def build_config(args: argparse.Namespace) -> ServerConfig:
    """Turn parsed `serve` arguments (and the config file they name) into a `ServerConfig`.

    Raises:
        ConfigError: The file or a value is invalid.
    """
    direct = {
        "data_dir": args.data_dir,
        "host": args.host,
        "port": args.port,
        "segment_max_bytes": args.segment_max_bytes,
        "max_payload_size": args.max_payload_size,
        "retention_interval_secs": args.retention_interval_secs,
        "idle_timeout_secs": args.idle_timeout_secs,
        "metrics_addr": args.metrics,
        "health_addr": args.health,
    }
    # argparse parsed each flag to its field's type (type=Path/int/float above)
    overrides = cast(
        "ServerConfigChanges", {key: value for key, value in direct.items() if value is not None}
    )
    if args.auth_token:
        print(
            "lnc serve: warning: --auth-token is visible to every local user (ps, /proc); "
            f"use --auth-token-file or {AUTH_TOKEN_ENV} instead",
            file=sys.stderr,
        )
    env_tokens = tuple(t for t in os.environ.get(AUTH_TOKEN_ENV, "").split(",") if t.strip())
    tokens = tuple(args.auth_token or ()) + tuple(t.strip() for t in env_tokens)
    if tokens or args.auth_token_file:
        overrides["auth"] = AuthConfig(enabled=True, tokens=tokens, token_file=args.auth_token_file)
    if args.tls_cert or args.tls_key:
        overrides["tls"] = TlsConfig(
            enabled=True,
            cert_path=args.tls_cert,
            key_path=args.tls_key,
            ca_path=args.tls_ca,
            require_client_cert=args.tls_require_client_cert,
        )
    faults = FaultConfig(
        backpressure_every_n_acks=args.fault_backpressure_every,
        ack_delay_ms=args.fault_ack_delay_ms,
        drop_after_frames=args.fault_drop_after_frames,
        max_fetch_bytes=args.fault_max_fetch_bytes,
        disk_full=args.fault_disk_full,
    )
    if faults != FaultConfig():
        overrides["faults"] = faults
    if args.config is not None:
        return load_config(args.config, **overrides)
    return new_config(overrides)


async def _serve(config: ServerConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with LanceServer(config=config) as server:
            print(f"listening on {server.address}", flush=True)
            if server.metrics_address:
                print(f"metrics on http://{server.metrics_address}/metrics", flush=True)
            if server.health_address:
                print(f"health on http://{server.health_address}/health", flush=True)
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def run_serve(args: argparse.Namespace) -> int:
    """Run the server described by parsed `serve` arguments until SIGINT/SIGTERM.

    Returns:
        0 after a clean shutdown, 2 for a configuration error, 1 if the server cannot start.
    """
    try:
        config = build_config(args)
    except ConfigError as error:
        print(f"lnc serve: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config))
    except (OSError, ConfigError) as error:
        print(f"lnc serve: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m lnc_client.server [serve flags]`: parse `argv` and serve."""
    parser = argparse.ArgumentParser(prog="python -m lnc_client.server", description=_SERVE_HELP)
    _add_arguments(parser)
    return run_serve(parser.parse_args(list(argv) if argv is not None else None))
