"""What a route says about itself in the OpenAPI document: summary, parameters, body and answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Operation:
    """The route's path, method, name (the operationId) and role (its security) are not repeated here."""

    summary: str
    responses: Mapping[int, tuple[str, Schema | None]]  # status → (description, content)
    errors: Sequence[int] = ()  # problem+json answers; their descriptions are shared, in telemetry_server.openapi
    parameters: Sequence[Schema] = ()
    body: Schema | None = None
    body_types: Sequence[str] = ("application/json",)  # the media types the body may be sent in
    error_content: Schema | None = None  # the errors' content when not problem+json (Route.problem_body)
