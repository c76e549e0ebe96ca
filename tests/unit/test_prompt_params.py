"""`GET /query` reads its parameters with the same allow-listed reader as the other endpoints."""

from __future__ import annotations

import pytest

from telemetry_server.errors import ValidationFailed
from telemetry_server.routes.query import parse_prompt_params


def test_prompt_and_zone() -> None:
    assert parse_prompt_params([("prompt", "count today")]) == ("count today", "UTC")
    assert parse_prompt_params([("tz", "Europe/Paris"), ("prompt", "count today")]) == ("count today", "Europe/Paris")


def test_every_problem_is_listed() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_prompt_params([("tag", "x"), ("tz", "UTC"), ("tz", "UTC"), ("tz", "Nowhere/Land")])

    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("tag", "is not a known parameter (allowed: prompt, tz)"),
        ("tz", "may be given only once"),
        ("tz", "may be given only once"),
        ("prompt", "is required, e.g. ?prompt=average cpu.load over the last hour"),
    ]
