"""Run the real Lance server (a binary named by path) on 127.0.0.1 for tests: one node or a cluster.

Nothing here builds or ships Lance: the tests only take a path, `LNC_TEST_LANCE_BIN=/path/to/lance`.
Without it every test that needs the real server skips, and the default suite is unchanged.

`RealNode` is one `lance` process: a temporary data directory, and every port it opens (client,
replication, metrics, health) on 127.0.0.1, chosen free at start. The replication port is always
the client port + 1, because a real cluster node names its leader to clients as "replication port
- 1" (lnc-replication `leader_addr_authoritative`). `RealCluster` starts three nodes that list each
other as peers, in L1 (no coordinator at all: three independent servers) or L3 (Raft-elected
leader, quorum writes, followers forward). Every process is stopped by its PID: SIGTERM, then
SIGKILL after a grace period; logs stay in the node's directory for a failing test to show.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

LANCE_BIN_ENV = "LNC_TEST_LANCE_BIN"
NEEDS_LANCE = f"needs the real Lance server: {LANCE_BIN_ENV}=/path/to/lance (docs/real-lance.md)"
START_TIMEOUT_S = 20.0


def lance_bin() -> Path | None:
    """The real `lance` binary named by LNC_TEST_LANCE_BIN, or None (then real-only tests skip)."""
    value = os.environ.get(LANCE_BIN_ENV, "").strip()
    if not value:
        return None
    path = Path(value)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise RuntimeError(f"{LANCE_BIN_ENV}={value} is not an executable file")
    return path


def _bound(port: int = 0) -> socket.socket:
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def _reserve_pair(held: list[socket.socket]) -> tuple[int, int]:
    """Two free consecutive ports (p, p + 1) on 127.0.0.1, kept bound in `held`."""
    for _ in range(200):
        first = _bound()
        port = int(first.getsockname()[1])
        try:
            second = _bound(port + 1)
        except OSError:
            first.close()
            continue
        held += [first, second]
        return port, port + 1
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


def _reserve(held: list[socket.socket]) -> int:
    sock = _bound()
    held.append(sock)
    return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class NodePorts:
    """The four ports of one node, all on 127.0.0.1."""

    client: int
    replication: int
    metrics: int
    health: int

    @classmethod
    def allocate(cls, count: int = 1) -> list[NodePorts]:
        """Ports for `count` nodes, all distinct: every one stays bound until all are chosen."""
        held: list[socket.socket] = []
        try:
            return [cls(*_reserve_pair(held), _reserve(held), _reserve(held)) for _ in range(count)]
        finally:
            for sock in held:
                sock.close()


@dataclass
class RealNode:
    """One real `lance` process. `start()` waits until its client port answers."""

    binary: Path
    data_dir: Path
    node_id: int = 0
    ports: NodePorts = field(default_factory=lambda: NodePorts.allocate()[0])
    peers: tuple[str, ...] = ()
    mode: str = "l1"
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """`127.0.0.1:PORT` of the client (LWP) listener."""
        return f"127.0.0.1:{self.ports.client}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        args = [
            str(self.binary),
            f"--listen=127.0.0.1:{self.ports.client}",
            f"--replication=127.0.0.1:{self.ports.replication}",
            f"--metrics=127.0.0.1:{self.ports.metrics}",
            f"--health=127.0.0.1:{self.ports.health}",
            f"--data-dir={self.data_dir}",
            f"--node-id={self.node_id}",
            f"--replication-mode={self.mode}",
        ]
        if self.peers:
            args.append("--peers=" + ",".join(self.peers))
        return args + list(self.extra_args)

    def start(self, *, wait: bool = True) -> RealNode:
        assert not self.running, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, RUST_LOG=os.environ.get("LNC_TEST_LANCE_LOG", "warn"))
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=env
            )
        STARTED.append(self)
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"lance exited early; log:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.ports.client), timeout=0.5),
            ):
                return
            time.sleep(0.02)
        raise RuntimeError(f"lance did not listen within {timeout}s; log:\n{self.log_tail()}")

    def health(self) -> str:
        """The body of GET /health (JSON text), or '' if the health port does not answer."""
        url = f"http://127.0.0.1:{self.ports.health}/health"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as reply:
                return str(reply.read().decode())
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, *, kill: bool = False, grace_s: float = 10.0) -> None:
        """Stop the process by its PID (SIGKILL at once if `kill`); a no-op when not running."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace_s)


STARTED: list[RealNode] = []
"""Every node started, in order; tests/conftest.py stops those a test left running."""


@dataclass
class RealCluster:
    """Three real nodes on loopback that list each other as peers (`mode` "l1" or "l3")."""

    binary: Path
    root: Path
    mode: str
    size: int = 3
    nodes: list[RealNode] = field(default_factory=list)

    def start(self) -> RealCluster:
        ports = NodePorts.allocate(self.size)
        peers = tuple(f"{i}@127.0.0.1:{p.replication}" for i, p in enumerate(ports))
        self.nodes = [
            RealNode(
                self.binary,
                self.root / f"node{i}",
                node_id=i,
                ports=ports[i],
                peers=peers,
                mode=self.mode,
            )
            for i in range(self.size)
        ]
        try:
            for node in self.nodes:
                node.start(wait=False)
            for node in self.nodes:
                node.wait_listening()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def addresses(self) -> list[str]:
        return [node.address for node in self.nodes]

    def node_at(self, address: str) -> RealNode:
        return next(node for node in self.nodes if node.address == address)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
