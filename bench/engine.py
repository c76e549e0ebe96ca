"""The MongoDB-wire engine and the Redis server a benchmark runs against, started as child processes."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.processes import LOOPBACK, Child, free_port, spawn, wait_for_port

REPO = Path(__file__).resolve().parent.parent
ENGINE_SCRIPT = REPO / "scripts" / "engine.sh"


@dataclass(frozen=True)
class EngineChoice:
    """How the MongoDB-wire engine is started: a template with {port} and {data}, its name, and why."""

    name: str
    template: str
    fast: bool
    note: str


def _engine_script(*args: str, timeout: float) -> str | None:
    """stdout of `scripts/engine.sh ARGS` when it succeeds in time, else None (run by bash: mode may be 644)."""
    if not ENGINE_SCRIPT.is_file():
        return None
    try:
        done = subprocess.run(
            ["bash", str(ENGINE_SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def choose_engine(build_timeout: float) -> EngineChoice:
    """MONGO_ENGINE_CMD if set; else scripts/engine.sh (`command`, or `build` + `start`); else secantusd-py."""
    explicit = os.environ.get("MONGO_ENGINE_CMD", "").strip()
    if explicit:
        name = Path(shlex.split(explicit)[0]).name
        return EngineChoice(name, explicit, True, "MONGO_ENGINE_CMD from the environment")
    name = _engine_script("name", timeout=10) or "fast engine"
    template = _engine_script("command", timeout=build_timeout)
    if template:
        return EngineChoice(name, template, True, "scripts/engine.sh command")
    if _engine_script("build", timeout=build_timeout):
        template = f"bash {shlex.quote(str(ENGINE_SCRIPT))} start {{port}} {{data}}"
        return EngineChoice(name, template, True, "scripts/engine.sh build + start")
    program = shutil.which("secantusd-py", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if program is None:
        raise RuntimeError("no MongoDB-wire engine: scripts/engine.sh failed and secantusd-py is not installed")
    return EngineChoice(
        "secantusd-py",
        f"{program} --host {LOOPBACK} --port {{port}} --storage-path {{data}}",
        False,
        "FALLBACK: scripts/engine.sh gave no engine; secantusd-py is slow, DB-bound figures measure it, not us",
    )


def start_mongo(choice: EngineChoice, folder: Path) -> tuple[Child, str]:
    port = free_port()
    data = folder / "mongo"
    data.mkdir(parents=True, exist_ok=True)
    command = [part.format(port=port, data=data) for part in shlex.split(choice.template)]
    child = spawn(f"mongo engine ({choice.name})", command, folder / "mongo.log")
    wait_for_port(child, port, timeout=60)
    return child, f"mongodb://{LOOPBACK}:{port}"


def redis_program() -> str:
    from telemetry_server.engines import redis_command

    return redis_command(0, Path("."))[0]


def start_redis(folder: Path) -> tuple[Child, str]:
    port = free_port()
    data = folder / "redis"
    data.mkdir(parents=True, exist_ok=True)
    command = [redis_program(), "--bind", LOOPBACK, "--port", str(port), "--dir", str(data)]
    child = spawn("redis", [*command, "--save", "", "--appendonly", "no"], folder / "redis.log")
    wait_for_port(child, port)
    return child, f"redis://{LOOPBACK}:{port}"
