"""Draining before a stop: on SIGTERM readiness answers 503 while the server goes on serving for
SHUTDOWN_DRAIN_SECONDS, so a load balancer probing /readyz takes the instance out before it stops listening."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType

# How `serve` (the main process) tells its workers where the mark is; not a setting.
DRAIN_MARK_VARIABLE = "TELEMETRY_SERVER_DRAIN_MARK"


class DrainMark:
    """A file whose existence says the instance is draining. A file, because the workers are processes of
    their own that the main process cannot reach otherwise, and a worker respawned mid-drain sees it too."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> DrainMark:
        value = environ.get(DRAIN_MARK_VARIABLE)
        return cls(Path(value) if value else None)

    def set(self) -> None:
        if self.path is not None:
            self.path.touch()

    def is_set(self) -> bool:
        # A stat() per readiness probe, a few a second; requests never look.
        return self.path is not None and self.path.exists()


class DrainOnTerm:
    """The main process's SIGTERM: set the mark, serve on for `seconds`, then `stop` as on Granian's own
    SIGTERM. A second SIGTERM stops at once; SIGINT (Ctrl-C) keeps Granian's immediate stop."""

    def __init__(self, mark: DrainMark, seconds: float, stop: Callable[[], None]) -> None:
        self._mark = mark
        self._seconds = seconds
        self._stop = stop
        self._timer: threading.Timer | None = None

    def install(self) -> None:
        """Replace Granian's SIGTERM handler: call after Granian set its own (its startup hooks run then)."""
        signal.signal(signal.SIGTERM, self._on_term)

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._stop()
            return
        self._mark.set()
        # Granian's main thread waits on an event that `stop` sets, so stopping from a timer thread is safe.
        self._timer = threading.Timer(self._seconds, self._stop)
        self._timer.daemon = True
        self._timer.start()
