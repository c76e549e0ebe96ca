"""Child processes of a benchmark run: start in their own session, wait for a port or a 200, stop by pid."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


class ProcessError(RuntimeError):
    """A child did not start, or exited early."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@contextlib.contextmanager
def started_children() -> Iterator[list[Child]]:
    """A list to put started children in; each is stopped on the way out, the last started first."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in reversed(started):
            stop(child)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def spawn(
    name: str, command: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Child:
    """Start `command` in a new session (its pid is its process group), output to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
    return Child(name, process, log_path)


def stop(child: Child, timeout: float = 15.0) -> None:
    """SIGTERM the child's process group (it is the one we created), SIGKILL after `timeout`."""
    if child.alive():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGTERM)
        try:
            child.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            child.process.wait(5)
    # Workers that outlived their parent still carry the group id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOOPBACK, port)) == 0


def wait_for_port(child: Child, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if not child.alive():
            raise ProcessError(f"{child.name} exited early:\n{child.tail()}")
        if time.monotonic() > deadline:
            raise ProcessError(f"{child.name} did not open port {port} in {timeout:.0f} s:\n{child.tail()}")
        time.sleep(0.02)


def http_status(port: int, path: str, timeout: float = 2.0) -> int | None:
    """The status of one GET on loopback, or None when nothing answers."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def wait_for_status(
    child: Child, port: int, path: str, expected: int = 200, timeout: float = 30.0, interval: float = 0.005
) -> float:
    """Poll until `path` answers `expected`; return the seconds since this call."""
    start = time.perf_counter()
    deadline = start + timeout
    while http_status(port, path) != expected:
        if not child.alive():
            raise ProcessError(f"{child.name} exited early:\n{child.tail()}")
        if time.perf_counter() > deadline:
            raise ProcessError(f"{child.name}: GET {path} never answered {expected} in {timeout:.0f} s")
        time.sleep(interval)
    return time.perf_counter() - start


@contextlib.contextmanager
def scratch_folder(prefix: str, keep: bool) -> Iterator[Path]:
    """A temporary folder for a run's engines and logs: removed afterwards unless `keep` (then it is named)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        if keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
