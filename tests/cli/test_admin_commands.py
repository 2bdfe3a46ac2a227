"""`lnc` topic, cluster and connection commands, run in-process against an embedded server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from lnc_client.admin import NO_LIMIT
from lnc_client.server import ServerThread, TlsConfig

from .conftest import Lnc, lnc_process


def test_topics_by_name_and_id_text_and_json(lnc: Lnc) -> None:
    assert lnc("list-topics").out.startswith("No topics found on server 127.0.0.1:")
    created = lnc("create-topic", "-n", "orders", "--json")
    assert created.code == 0
    topic = json.loads(created.out)
    assert topic["name"] == "orders"
    by_name, by_id = lnc("get-topic", "-t", "orders"), lnc("get-topic", "--topic", str(topic["id"]))
    assert by_name == by_id
    assert f"  ID:         {topic['id']}\n  Name:       orders\n" in by_name.out
    assert json.loads(lnc("get-topic", "-t", "orders", "--json").out)["id"] == topic["id"]
    listed = json.loads(lnc("list-topics", "--json").out)
    assert [t["name"] for t in listed] == ["orders"]


def test_create_twice_fails_in_one_line_unless_if_not_exists(lnc: Lnc) -> None:
    assert lnc("create-topic", "-n", "dup").code == 0
    again = lnc("create-topic", "-n", "dup")
    assert again.code == 1
    assert again.err.count("\n") == 1
    assert again.err.startswith("Error: ")
    assert "Traceback" not in again.err
    assert lnc("create-topic", "-n", "dup", "--if-not-exists").code == 0
    bad = lnc("create-topic", "-n", "no spaces")
    assert bad.code == 1
    assert bad.err.startswith("Error: ")


def _metadata(server: ServerThread, name: str) -> dict[str, object]:
    return json.loads((server.data_dir / "segments" / name / "metadata.json").read_text())


def test_retention_zero_means_no_limit_as_the_help_says(lnc: Lnc, server: ServerThread) -> None:
    made = lnc("create-topic", "-n", "kept", "--max-age-secs", "0", "--max-bytes", "2048")
    assert "  Max age: unlimited\n  Max bytes: 2.00 KB\n" in made.out
    assert _metadata(server, "kept")["retention"] == {"max_bytes": 2048, "max_age_secs": NO_LIMIT}
    done = lnc("set-retention", "-t", "kept", "--max-age-secs", "60", "--max-bytes", "0")
    assert done.out == (
        "Retention policy set for topic 1\n  Max age: 60 seconds\n  Max bytes: unlimited\n"
    )
    assert _metadata(server, "kept")["retention"] == {"max_bytes": NO_LIMIT, "max_age_secs": 60}
    missing = lnc("set-retention", "-t", "kept", "--max-age-secs", "1")
    assert missing.code == 2
    assert "--max-bytes" in missing.err


def test_delete_asks_unless_force(lnc: Lnc) -> None:
    lnc("create-topic", "-n", "doomed")
    kept = lnc("delete-topic", "-t", "doomed", stdin=b"n\n")
    assert kept.out.endswith("This cannot be undone. [y/N]: Aborted.\n")
    assert lnc("get-topic", "-t", "doomed").code == 0
    gone = lnc("delete-topic", "-t", "doomed", stdin=b"yes\n")
    assert gone.out.endswith("Topic 1 deleted successfully.\n")
    assert lnc("get-topic", "-t", "doomed").code == 1
    assert lnc("delete-topic", "-t", "doomed", "--force").code == 1


def test_cluster_status_and_ping(lnc: Lnc) -> None:
    status = lnc("cluster-status")
    assert "  Is Leader:      yes\n" in status.out
    assert json.loads(lnc("cluster-status", "--json").out)["quorum_available"] is True
    ping = lnc("ping", "-c", "3", "-i", "0")
    assert ping.code == 0
    assert ping.out.count("keepalive from") == 3
    assert "3 pings: min/avg/max = " in ping.out


def test_server_from_flag_env_and_default(
    lnc: Lnc, server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert lnc("list-topics", "-s", server.address).code == 0
    monkeypatch.setenv("LNC_SERVER", "127.0.0.1:1")
    refused = lnc("list-topics")
    assert refused.code == 1
    assert "127.0.0.1:1" in refused.err
    assert refused.err.count("\n") == 1
    seeds = lnc("list-topics", "-s", f"127.0.0.1:1,{server.address}")
    assert seeds.code == 0
    assert lnc("list-topics", "-s", "[bad").code == 1


def test_token_from_file_or_env_never_needed_on_the_command_line(
    tmp_path: Path, lnc: Lnc, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With auth on, the embedded server gates every command (docs/compatibility.md).
    with ServerThread(tmp_path / "auth", port=0, auth_tokens=["s3cret"]) as secured:
        address = secured.address
        refused = lnc("create-topic", "-s", address, "-n", "t")
        assert refused.code == 1
        assert refused.err.startswith("Error: ")
        assert "uthentica" in refused.err
        token_file = tmp_path / "token"
        token_file.write_text("s3cret\n")
        assert lnc("create-topic", "-s", address, "-n", "t", "--token-file", token_file).code == 0
        refused = lnc("produce", "-s", address, "-t", "t", "x", "--timeout", "2")
        assert refused.code == 1
        assert "uthentica" in refused.err
        assert lnc("produce", "-s", address, "-t", "t", "x", "--token-file", token_file).code == 0
        monkeypatch.setenv("LNC_TOKEN", "wrong")
        assert lnc("produce", "-s", address, "-t", "t", "x", "--timeout", "2").code == 1
        monkeypatch.setenv("LNC_TOKEN", "s3cret")
        assert lnc("produce", "-s", address, "-t", "t", "y").code == 0
        assert lnc("consume", "-s", address, "-t", "t", "--format", "text").out == "x\ny\n"
        unreadable = lnc("list-topics", "-s", address, "--token-file", tmp_path / "none")
        assert unreadable.code == 1
        assert "cannot read token file" in unreadable.err


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_tls_options(tmp_path: Path, lnc: Lnc) -> None:
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=lance.test", "-addext",
         "subjectAltName=DNS:lance.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    tls = TlsConfig(enabled=True, cert_path=cert, key_path=key)
    with ServerThread(tmp_path / "tls", port=0, tls=tls) as secured:
        address = secured.address
        trusted = ["--tls-ca", cert, "--tls-server-name", "lance.test"]
        assert lnc("create-topic", "-s", address, "-n", "t", *trusted).code == 0
        assert lnc("list-topics", "-s", address, "--tls", "--tls-insecure").code == 0
        unverified = lnc("list-topics", "-s", address, "--tls-ca", cert)  # name is not 127.0.0.1
        assert unverified.code == 1
        assert lnc("list-topics", "-s", address).code == 1  # plain TCP to a TLS server
        assert lnc("list-topics", "--tls-ca", tmp_path / "missing.pem").code == 1


def test_errors_in_a_subprocess_are_one_line_without_traceback(server: ServerThread) -> None:
    missing = lnc_process("get-topic", "-s", server.address, "-t", "nope")
    assert missing.code == 1
    assert missing.err.startswith("Error: ")
    assert missing.err.count("\n") == 1
    refused = lnc_process("cluster-status", env={"LNC_SERVER": "127.0.0.1:1"})
    assert refused.code == 1
    assert "Traceback" not in refused.err
    assert refused.err.count("\n") == 1
    usage = lnc_process("consume", "--topic")
    assert usage.code == 2
    assert usage.err.count("\n") == 1
