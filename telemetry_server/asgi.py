"""The ASGI entry point for Granian: `telemetry_server.asgi:create_app` with factory=True, one per worker."""

from __future__ import annotations

import os
from pathlib import Path

from telemetry_server.app import App
from telemetry_server.config import load_settings, read_environment
from telemetry_server.drain import DrainMark
from telemetry_server.logs import configure_logging


def create_app() -> App:
    environ = read_environment(Path.cwd())
    settings = load_settings(environ)
    configure_logging(settings.log_level, settings.log_format, with_process=True)
    # The OpenTelemetry SDK reads its OTEL_* variables from the process's environment only: those set in a .env
    # file join them there (the real environment's still win, as read_environment merged them).
    os.environ.update({name: value for name, value in environ.items() if name.startswith("OTEL_") and value})
    return App(settings, draining=DrainMark.from_environ(os.environ).is_set)
