"""The ASGI entry point for Granian: `telemetry_server.asgi:create_app` with factory=True, one per worker."""

from __future__ import annotations

from pathlib import Path

from telemetry_server.app import App
from telemetry_server.config import load_settings, read_environment
from telemetry_server.logs import configure_logging


def create_app() -> App:
    settings = load_settings(read_environment(Path.cwd()))
    configure_logging(settings.log_level, settings.log_format, with_process=True)
    return App(settings)
