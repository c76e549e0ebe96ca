"""The dashboard's files: read once into a table, each with its type and ETag; 304 while unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from telemetry_server.routes.dashboard import etag_matches, load_assets
from tests.unit.conftest import Harness


def test_only_files_of_a_served_type_are_loaded(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text("export {};")
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "notes.md").write_text("# not served")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.js").write_text("")

    assets = load_assets(tmp_path)

    assert set(assets) == {"app.js", "index.html"}
    assert assets["app.js"].found.content_type == b"text/javascript; charset=utf-8"
    page_headers = dict(assets["index.html"].found.headers)
    assert b"content-security-policy" in page_headers
    assert b"content-security-policy" not in dict(assets["app.js"].found.headers)
    assert assets["app.js"].unchanged.status == 304
    assert assets["app.js"].unchanged.body == b""


def test_the_etag_follows_the_content(tmp_path: Path) -> None:
    (tmp_path / "a.js").write_text("1")
    (tmp_path / "b.js").write_text("1")
    (tmp_path / "c.js").write_text("2")
    assets = load_assets(tmp_path)
    assert assets["a.js"].etag == assets["b.js"].etag != assets["c.js"].etag


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        (b'"abc"', True),
        (b'W/"abc"', True),
        (b'"x", "abc"', True),
        (b"*", True),
        (b'"abcd"', False),
        (b"abc", False),
        (b"", False),
    ],
)
def test_if_none_match(header: bytes | None, matches: bool) -> None:
    assert etag_matches(header, b'"abc"') is matches


def test_served_at_the_root_and_under_dashboard(harness: Harness) -> None:
    page = harness.client.get("/")
    assert page.status == 200
    assert page.header("content-type") == "text/html; charset=utf-8"
    etag = page.header("etag")
    assert etag is not None

    again = harness.client.get("/", headers=[("if-none-match", etag)])
    assert again.status == 304
    assert again.body == b""
    assert again.header("content-length") is None  # a 304's would have to be the 200's: none is sent

    assert harness.client.get("/dashboard/app.js").header("content-type") == "text/javascript; charset=utf-8"
    missing = harness.client.get("/dashboard/..")
    assert missing.status == 404
    assert missing.header("content-type") == "application/problem+json"
