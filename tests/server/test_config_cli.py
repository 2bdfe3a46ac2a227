"""The TOML config file, flags, and the `python -m lnc_client.server` process."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import inspect
import os
import signal
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from lnc_client.protocol.frame import KEEPALIVE_FRAME
from lnc_client.server import (
    AuthConfig,
    ConfigError,
    FaultConfig,
    LanceServer,
    ServerConfig,
    ServerOptions,
    ServerThread,
    TlsConfig,
    load_config,
)
from lnc_client.server.cli import AUTH_TOKEN_ENV, _add_arguments, build_config, main
from lnc_client.server.config import ServerConfigChanges

from .conftest import RawConn


def test_lance_toml_layout(tmp_path: Path) -> None:
    path = tmp_path / "lance.toml"
    path.write_text(
        'data_dir = "/srv/lance"\nlisten_addr = "0.0.0.0:2000"\n'
        "retention_cleanup_interval_secs = 5\n"
        "[ingestion]\nmax_payload_size = 1024\n[io]\nsegment_max_size = 4096\n"
        '[auth]\nenabled = true\ntokens = ["a", "b"]\nwrite_only = false\n'
        '[tls]\nenabled = true\ncert_path = "c.pem"\nkey_path = "k.pem"\n'
        "[server]\nidle_timeout_secs = 30\n[faults]\nack_delay_ms = 5\n"
    )
    config = load_config(path, port=0)
    assert config.data_dir == Path("/srv/lance")
    assert (config.host, config.port) == ("0.0.0.0", 0)
    assert config.retention_interval_secs == 5
    assert (config.max_payload_size, config.segment_max_bytes) == (1024, 4096)
    assert config.auth == AuthConfig(enabled=True, tokens=("a", "b"))
    assert config.tls == TlsConfig(enabled=True, cert_path=Path("c.pem"), key_path=Path("k.pem"))
    assert config.idle_timeout_secs == 30
    assert config.faults == FaultConfig(ack_delay_ms=5)


@pytest.mark.parametrize(
    "text",
    [
        "[io]\nsegment_max_size = 'big'\n",
        "listen_addr = 'nohost'\n",
        "[auth\n",
        "[tls]\nenabled = true\n",
        "[server]\nfetch_window_cap = 0\n",  # consumers would spin on empty windows
    ],
)
def test_bad_config_is_rejected(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path)


def serve_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    _add_arguments(parser)  # the parser the subcommand uses
    return parser.parse_args(argv)


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[io]\nsegment_max_size = 4096\n")
    args = serve_args(
        [
            "--config",
            str(path),
            "--port",
            "0",
            "--segment-max-bytes",
            "99",
            "--auth-token",
            "t",
            "--fault-drop-after-frames",
            "3",
        ]
    )
    config = build_config(args)
    assert (config.port, config.segment_max_bytes) == (0, 99)
    assert config.auth == AuthConfig(enabled=True, tokens=("t",))
    assert config.faults == FaultConfig(drop_after_frames=3)


def test_bad_flags_exit_with_2(tmp_path: Path) -> None:
    assert main(["--data-dir", str(tmp_path), "--port", "70000"]) == 2


async def test_process_prints_port_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lnc_client.server",
        "--data-dir",
        str(tmp_path),
        "--port",
        "0",
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 20)
    port = int(line.rsplit(b":", 1)[1])
    conn = await RawConn.open(port)
    await conn.send(KEEPALIVE_FRAME)
    assert await conn.read_frame() == KEEPALIVE_FRAME
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 20) == 0
    assert await conn.expect_closed() == b""
    await conn.close()


def test_server_thread_takes_exactly_the_lance_server_arguments() -> None:
    thread = inspect.signature(ServerThread).parameters
    server = inspect.signature(LanceServer).parameters
    assert [(p.name, p.kind, p.default) for p in thread.values()] == [
        (p.name, p.kind, p.default) for p in server.values()
    ]


def test_config_changes_are_typed_as_the_config_fields() -> None:
    fields = {f.name: f.type for f in dataclasses.fields(ServerConfig)}
    changes = typing.get_type_hints(ServerConfigChanges)
    assert {name: str(kind) for name, kind in changes.items()} == {
        name: str(typing.get_type_hints(ServerConfig)[name]) for name in fields
    }
    options = typing.get_type_hints(ServerOptions)
    del options["auth_tokens"]  # the one option that is not a field (it makes `auth`)
    assert {name: changes[name] for name in options} == options
    config = ServerConfig(data_dir=Path("d")).with_changes(port=7, host="::1")
    assert (config.data_dir, config.host, config.port) == (Path("d"), "::1", 7)


def test_an_unknown_server_option_is_refused_not_ignored(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="prt"):
        LanceServer(tmp_path, prt=0)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("[server]\nidle_timout_secs = 5\n", "server.idle_timout_secs"),
        ("data_dirr = 'x'\n", "data_dirr"),
        ("[auth]\nenabled = true\ntoken = 'a'\n", "auth.token"),
        ("[tls]\ncert = 'c.pem'\n", "tls.cert"),
        ("[faults]\nack_delay = 5\n", "faults.ack_delay"),
        ("[ingestion]\nmax_payload = 5\n", "ingestion.max_payload"),
    ],
)
def test_an_unknown_config_key_is_refused_with_its_name(
    tmp_path: Path, text: str, name: str
) -> None:
    path = tmp_path / "lance.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"unknown config key {name}$"):
        load_config(path)


def test_real_server_keys_we_do_not_use_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "lance.toml"
    path.write_text(
        "node_id = 1\npeers = []\n[wal]\nenabled = false\n[ingestion]\nactor_count = 2\n"
        "max_payload_size = 1024\n[io]\nring_size = 64\n"
    )
    assert load_config(path).max_payload_size == 1024


def test_auth_token_flag_warns_that_it_shows_in_ps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(AUTH_TOKEN_ENV, raising=False)
    build_config(serve_args(["--data-dir", str(tmp_path), "--auth-token", "t"]))
    assert "visible to every local user" in capsys.readouterr().err
    build_config(serve_args(["--data-dir", str(tmp_path)]))
    assert capsys.readouterr().err == ""


def test_auth_tokens_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(AUTH_TOKEN_ENV, "one, two")
    config = build_config(serve_args(["--data-dir", str(tmp_path)]))
    assert config.auth == AuthConfig(enabled=True, tokens=("one", "two"))
    assert capsys.readouterr().err == ""  # nothing shows in ps, so no warning
