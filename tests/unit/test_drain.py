"""Draining before a stop: the mark the workers read, the main process's SIGTERM, and readiness while draining."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from telemetry_server.drain import DRAIN_MARK_VARIABLE, DrainMark, DrainOnTerm
from tests.unit.conftest import AppFactory


@pytest.fixture
def sigterm_restored() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_the_mark_is_read_from_the_environment_the_main_process_set(tmp_path: Path) -> None:
    mark = DrainMark.from_environ({DRAIN_MARK_VARIABLE: str(tmp_path / "mark")})
    assert not mark.is_set()

    mark.set()

    assert mark.is_set()
    assert DrainMark.from_environ({DRAIN_MARK_VARIABLE: str(tmp_path / "mark")}).is_set()


def test_without_a_mark_nothing_is_ever_draining() -> None:
    mark = DrainMark.from_environ({})
    mark.set()

    assert not mark.is_set()


def test_sigterm_marks_draining_and_stops_only_after_the_drain(tmp_path: Path, sigterm_restored: None) -> None:
    mark = DrainMark(tmp_path / "mark")
    stopped = threading.Event()
    DrainOnTerm(mark, 0.2, stopped.set).install()

    os.kill(os.getpid(), signal.SIGTERM)

    assert mark.is_set()
    assert not stopped.is_set()  # still serving
    assert stopped.wait(5)


def test_a_second_sigterm_stops_at_once(tmp_path: Path, sigterm_restored: None) -> None:
    stops: list[str] = []
    DrainOnTerm(DrainMark(tmp_path / "mark"), 60, lambda: stops.append(threading.current_thread().name)).install()

    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGTERM)

    assert stops == [threading.main_thread().name]


def test_readiness_is_503_while_draining_and_liveness_is_not(make_app: AppFactory, tmp_path: Path) -> None:
    mark = DrainMark(tmp_path / "mark")
    harness = make_app(draining=mark.is_set)
    assert harness.client.get("/readyz").status == 200

    mark.set()
    ready = harness.client.get("/readyz")

    assert ready.status == 503
    assert ready.json()["status"] == "draining"
    assert "SHUTDOWN_DRAIN_SECONDS" in ready.json()["detail"]
    assert harness.client.get("/healthz").status == 200
    assert harness.client.get("/metrics").status == 200  # it goes on serving
