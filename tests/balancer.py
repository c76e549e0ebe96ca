"""HAProxy as a plain process on loopback in front of our instances, health-checking `/readyz` as a load
balancer in production would; for tests/integration/test_fleet.py and bench/scale_out.py."""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from telemetry_server import engines

# A server is out after 2 failed probes 0.25 s apart, so a drain of 1 s or more covers the balancer's reaction.
CHECK_INTERVAL_MS = 250
SERVER_HEADER = "x-served-by"

_CONFIG = """\
global
    maxconn 4096
    stats socket {socket} level admin

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # A probe may take this long: without it HAProxy allows one interval, and a server busy with batch writes
    # answered /readyz later than 0.25 s and was taken out (its 503 when draining still comes at once).
    timeout check 2s
    # No retry on another server: a restart must be clean by the instances' drain alone (with `retries 3` and
    # `option redispatch` HAProxy hid refused connections of instances stopped without one, measured 2026-11-28).
    retries 0

frontend api
    bind 127.0.0.1:{port}
    default_backend instances

backend instances
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter {check_ms}ms fall 2 rise 2
    http-response set-header {header} %[srv_name]
{servers}
"""


def haproxy_binary() -> str | None:
    """HAPROXY_BIN, else haproxy on the PATH (scripts/fleet.sh haproxy installs it)."""
    return os.environ.get("HAPROXY_BIN") or shutil.which("haproxy")


def server_name(index: int) -> str:
    return f"instance-{index}"


class Balancer:
    """HAProxy round-robin over 127.0.0.1 ports, in the foreground of its own process, stopped with SIGTERM."""

    def __init__(self, binary: str, ports: list[int], folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = engines.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._socket = folder / "admin.sock"
        servers = "\n".join(f"    server {server_name(i)} 127.0.0.1:{p} check" for i, p in enumerate(ports))
        config = folder / "haproxy.cfg"
        config.write_text(
            _CONFIG.format(
                socket=self._socket,
                port=self.port,
                check_ms=CHECK_INTERVAL_MS,
                header=SERVER_HEADER,
                servers=servers,
            )
        )
        self._log = folder / "haproxy.log"
        with self._log.open("ab") as out:
            self.process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT)
        if not self.wait_for_states({server_name(i): "UP" for i in range(len(ports))}, 30):
            self.stop()
            raise RuntimeError(f"HAProxy did not see every server up: {self._log.read_text()[-2000:]}")

    def states(self) -> dict[str, str]:
        """Each server's state as HAProxy sees it (UP, DOWN, `UP 1/2` while rising...)."""
        return {name: row["status"] for name, row in self._servers().items()}

    def last_checks(self) -> dict[str, str]:
        """Each server's last health check: `L7STS 503` (it answered 503), `L4CON` (connection refused)..."""
        return {name: f"{row['check_status']} {row['check_code']}".strip() for name, row in self._servers().items()}

    def _servers(self) -> dict[str, dict[str, str]]:
        """The servers' rows of HAProxy's statistics, from its admin socket."""
        try:
            with socket.socket(socket.AF_UNIX) as admin:
                admin.settimeout(2)
                admin.connect(str(self._socket))
                admin.sendall(b"show stat\n")
                reply = b""
                while chunk := admin.recv(65536):
                    reply += chunk
        except OSError:
            return {}
        rows = csv.DictReader(reply.decode().removeprefix("# ").splitlines())
        return {row["svname"]: row for row in rows if row["svname"] not in ("FRONTEND", "BACKEND")}

    def wait_for_states(self, wanted: dict[str, str], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"HAProxy exited: {self._log.read_text()[-2000:]}")
            states = self.states()
            if all(states.get(name) == state for name, state in wanted.items()):
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
