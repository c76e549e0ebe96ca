"""The ASGI entry point for Granian: `telemetry_server.asgi:create_app` with factory=True, one per worker."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from telemetry_server.app import App
from telemetry_server.config import load_settings, read_environment
from telemetry_server.drain import DrainMark


def create_app() -> App:
    settings = load_settings(read_environment(Path.cwd()))
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )
    return App(settings, draining=DrainMark.from_environ(os.environ).is_set)
