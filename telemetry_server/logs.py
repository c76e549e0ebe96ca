"""How the server logs: one configuration for the CLI and the workers, text or JSON lines, and every line logged
while a request is served carrying its request id (and its trace and span ids when tracing is on)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

# The number of the request this task serves; its id (`request_id`) is rendered only when a line or a problem
# needs it. PERF: a set and a reset of this variable are the only cost a request pays for its logs (~0.1 µs).
REQUEST_NUMBER: ContextVar[int | None] = ContextVar("request_number", default=None)

# (trace id, span id) of the current span, in hex, or None; set by telemetry_server.tracing only when tracing is
# on, so that this module never imports OpenTelemetry.
TraceIds = Callable[[], tuple[str, str] | None]
_trace_ids: TraceIds | None = None


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def request_id(number: int) -> str:
    """The id of a request in problems and logs: the worker's pid and the request's number there, in hex."""
    return f"{os.getpid():x}-{number:x}"


def follow_traces(trace_ids: TraceIds | None) -> None:
    """Put the current trace's ids on every line from now on (None: no longer)."""
    global _trace_ids
    _trace_ids = trace_ids


class RequestFields(logging.Filter):
    """Adds `request_id`, `trace_id` and `span_id` to every record (None outside a request or a trace)."""

    def filter(self, record: logging.LogRecord) -> bool:
        number = REQUEST_NUMBER.get()
        record.request_id = None if number is None else request_id(number)
        ids = _trace_ids() if _trace_ids is not None else None
        record.trace_id, record.span_id = ids if ids is not None else (None, None)
        return True


class TextFormatter(logging.Formatter):
    """The classic line, followed by `request_id=… trace_id=… span_id=…` when it was logged within a request."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [(name, getattr(record, name, None)) for name in ("request_id", "trace_id", "span_id")]
        extra = " ".join(f"{name}={value}" for name, value in fields if value is not None)
        return f"{line} {extra}" if extra else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log shippers: time (UTC, ISO 8601), level, logger, message, process, the
    request's ids when there are any, and the traceback as text."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name in ("request_id", "trace_id", "span_id"):
            value = getattr(record, name, None)
            if value is not None:
                document[name] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exception"] = record.exc_text
        return orjson.dumps(document).decode()

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def configure_logging(level: str, log_format: LogFormat, *, with_process: bool = False) -> None:
    """The root logger's one handler (stderr), at `level`, in `log_format`; `with_process` puts the pid in text
    lines (workers: several write to one stream)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestFields())
    if log_format is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        process = " [%(process)d]" if with_process else ""
        handler.setFormatter(TextFormatter(f"%(asctime)s %(levelname)s{process} %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
