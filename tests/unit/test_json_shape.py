"""JSON body limits: depth, and keys that MongoDB would read as operators or paths."""

from __future__ import annotations

import pytest

from telemetry_server.errors import ValidationFailed
from telemetry_server.http.json_shape import check_json_shape


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"name": {"$ne": ""}}, "$.name.$ne"),
        ({"$where": "sleep(1000)"}, "$.$where"),
        ([{"name": "a", "tags": [{"a.b": 1}]}], "$[0].tags[0].a.b"),
        ([[[[[1]]]]], "$[0][0][0][0]"),
        ({"a": {"b": {"c": {"d": {}}}}}, "$.a.b.c.d"),
    ],
)
def test_refused_with_the_path(document: object, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_json_shape(document, 4)
    assert caught.value.status == 422
    assert [e.field for e in caught.value.errors] == [field]


@pytest.mark.parametrize(
    "document",
    [
        {"name": "cpu.load", "tags": ["$ is fine in values", "a.b"], "value": 1},
        [{"name": "x", "tags": ["t"], "value": 1}],
        [[[1]]],
        "scalar",
        None,
    ],
)
def test_accepted(document: object) -> None:
    check_json_shape(document, 4)


def test_the_default_depth_is_reported_by_its_variable() -> None:
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    with pytest.raises(ValidationFailed, match="MAX_JSON_DEPTH"):
        check_json_shape(deep, 32)
