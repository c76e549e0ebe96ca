"""The one error tree of the application; `http.problems` maps it to responses in one place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class ConfigurationError(Exception):
    """A configuration value is missing or invalid; the message names the variable."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason a piece of input was refused."""

    field: str
    message: str
    index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.index is not None:
            out["index"] = self.index
        return out


class AppError(Exception):
    """Base of every error the API answers with a status of its own."""

    status: int = 500
    code: str = "internal"
    title: str = "Internal Server Error"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title

    def headers(self) -> list[tuple[bytes, bytes]]:
        return []

    def extra(self) -> dict[str, Any]:
        return {}


class BadRequest(AppError):
    status, code, title = 400, "bad_request", "Bad Request"


class MalformedJSON(BadRequest):
    code, title = "malformed_json", "Malformed JSON"


class PointsRefused(BadRequest):
    """Some points of an agent's request could not be stored and were dropped; the others were stored (the
    remote_write spec's answer: 400, not retried, with a readable reason)."""

    code, title = "points_refused", "Points Refused"

    def __init__(self, stored: int, refused: int, first_reason: str) -> None:
        super().__init__(f"{refused} points refused, {stored} stored; the first refused: {first_reason}")
        self.stored = stored
        self.refused = refused

    def extra(self) -> dict[str, Any]:
        return {"stored": self.stored, "refused": self.refused}


class AuthenticationRequired(AppError):
    """No usable API key: missing, malformed, unknown and revoked keys all get this same answer."""

    status, code, title = 401, "authentication_required", "Unauthorized"

    def __init__(self) -> None:
        super().__init__("send a valid API key as `Authorization: Bearer <key>` or `Authorization: Token <key>`")

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"www-authenticate", b'Bearer realm="telemetry-server"')]


class Forbidden(AppError):
    """A valid API key whose role is too small for the route."""

    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not Found"


class MethodNotAllowed(AppError):
    status, code, title = 405, "method_not_allowed", "Method Not Allowed"

    def __init__(self, allowed: Sequence[str]) -> None:
        self.allowed = sorted(allowed)
        super().__init__(f"allowed methods: {', '.join(self.allowed)}")

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"allow", ", ".join(self.allowed).encode())]


class RequestTimeout(AppError):
    status, code, title = 408, "request_timeout", "Request Timeout"


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload_too_large", "Content Too Large"


class UnsupportedMediaType(AppError):
    status, code, title = 415, "unsupported_media_type", "Unsupported Media Type"


class UnsupportedContentEncoding(UnsupportedMediaType):
    """A body compressed in a way we do not decode; `Accept-Encoding` names the ones we do (RFC 9110, 15.5.16)."""

    code = "unsupported_content_encoding"

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"accept-encoding", b"gzip")]


# A body of many bad items (a 1 MiB batch can hold ~400k bad tags) must not become an answer many times its
# size: the first MAX_LISTED_ERRORS problems are listed, the rest only counted.
# PERF: a 950 KiB batch of 5,860 metrics with 64 bad tags each was a 422 of 22.4 MiB that cost 1.73 s of worker
# CPU and +153 MiB of peak RSS; with the list cut, 6 KiB, 0.32 s and +14 MiB (`python -m bench.abuse_probe
# --case bad-batch`). What remains is validation itself, bounded by the body: ~720 ns a bad tag, ~530 a good one.
MAX_LISTED_ERRORS = 100


class ValidationFailed(AppError):
    status, code, title = 422, "validation_failed", "Unprocessable Content"

    def __init__(self, errors: Sequence[FieldError], detail: str | None = None, omitted: int = 0) -> None:
        self.errors = list(errors[:MAX_LISTED_ERRORS])
        self.omitted = omitted + max(len(errors) - MAX_LISTED_ERRORS, 0)
        super().__init__(detail or "; ".join(_describe(e) for e in self.errors[:5]))

    def extra(self) -> dict[str, Any]:
        listed: dict[str, Any] = {"errors": [e.to_dict() for e in self.errors]}
        if self.omitted:
            listed["errors_omitted"] = self.omitted
        return listed


class FieldErrors:
    """Problems as validation finds them: the first MAX_LISTED_ERRORS kept, the rest only counted, so that
    validating a body full of mistakes costs about what parsing it did."""

    __slots__ = ("listed", "omitted")

    def __init__(self) -> None:
        self.listed: list[FieldError] = []
        self.omitted = 0

    @property
    def count(self) -> int:
        return len(self.listed) + self.omitted

    def add(self, field: str, message: str, index: int | None = None) -> None:
        if len(self.listed) < MAX_LISTED_ERRORS:
            self.listed.append(FieldError(field, message, index))
        else:
            self.omitted += 1

    def refusal(self, detail: str | None = None) -> ValidationFailed:
        return ValidationFailed(self.listed, detail, self.omitted)


class RateLimited(AppError):
    status, code, title = 429, "rate_limited", "Too Many Requests"

    def __init__(self, retry_after_seconds: int, quota_headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(f"rate limit exceeded; retry in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds
        self._quota_headers = quota_headers

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(self.retry_after_seconds).encode()), *self._quota_headers]


class StorageUnavailable(AppError):
    """A database could not be reached in time: the client should retry."""

    status, code, title = 503, "storage_unavailable", "Service Unavailable"
    retry_after_seconds = 1

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(self.retry_after_seconds).encode())]


class SubscriberLimitReached(AppError):
    """One API key (or, without auth, one address) holds as many live streams on this worker as it may."""

    status, code, title = 429, "subscriber_limit_reached", "Too Many Streams"

    def __init__(self, limit: int) -> None:
        super().__init__(f"this key already holds {limit} live streams on this worker (STREAM_MAX_PER_KEY)")

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", b"5")]


class StreamsFull(StorageUnavailable):
    """The worker serves as many live streams as it may: another worker or instance may have room."""

    code, title = "streams_full", "Service Unavailable"


class UpgradeRequired(AppError):
    """A WebSocket endpoint asked for over plain HTTP."""

    status, code, title = 426, "upgrade_required", "Upgrade Required"

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"upgrade", b"websocket"), (b"connection", b"Upgrade")]


class PromptNotUnderstood(ValidationFailed):
    """A prompt, or a part of it, matched no rule: the body names the part and shows prompts that work."""

    code, title = "prompt_not_understood", "Prompt Not Understood"

    def __init__(self, part: str, reason: str, examples: Sequence[str] = ()) -> None:
        self.part = part
        self.examples = list(examples)
        super().__init__([FieldError("prompt", reason)], detail=f"not understood: {part!r} ({reason})")

    def extra(self) -> dict[str, Any]:
        return {**super().extra(), "not_understood": self.part, "examples": self.examples}


class SeriesLimitReached(AppError):
    """A write would create a series past SERIES_MAX: the index every worker keeps in memory is bounded."""

    status, code, title = 422, "series_limit_reached", "Series Limit Reached"

    def __init__(self, limit: int) -> None:
        super().__init__(f"this server keeps at most {limit} series (SERIES_MAX); the write would create more")


class QueryTooLarge(AppError):
    """A query would read or return more than the server holds in memory for one request."""

    status, code, title = 422, "query_too_large", "Query Too Large"


class QueryTimedOut(StorageUnavailable):
    """A heavy read (a question, a filtered listing) did not get a slot and finish in time: come back later."""

    code = "query_timed_out"


MAX_ECHOED_CHARACTERS = 64


def excerpt(text: str) -> str:
    """A client's own string as a detail repeats it: whole up to MAX_ECHOED_CHARACTERS, else cut with an
    ellipsis, so that an id of 60 KiB does not come back in the answer."""
    if len(text) <= MAX_ECHOED_CHARACTERS:
        return text
    return text[: MAX_ECHOED_CHARACTERS - 1] + "…"


def _describe(error: FieldError) -> str:
    where = error.field if error.index is None else f"[{error.index}].{error.field}"
    return f"{where}: {error.message}"
