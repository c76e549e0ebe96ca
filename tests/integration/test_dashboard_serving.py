"""The dashboard's files over real HTTP: content types, ETags and 304s, and no way out of the table of files."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
import pytest

from telemetry_server.routes.dashboard import CONTENT_TYPES

ASSETS = [
    "app.js",
    "api.js",
    "live.js",
    "chart.js",
    "panels.js",
    "format.js",
    "dashboard.css",
    "icon.svg",
    "uPlot.iife.min.js",
]


def test_the_page_is_served_at_the_root_and_names_its_files(client: httpx.Client) -> None:
    page = client.get("/")

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for asset in ("/dashboard/app.js", "/dashboard/uPlot.iife.min.js", "/dashboard/dashboard.css"):
        assert asset in page.text


@pytest.mark.parametrize("asset", ASSETS)
def test_each_file_has_its_type_an_etag_and_a_304_while_unchanged(client: httpx.Client, asset: str) -> None:
    first = client.get(f"/dashboard/{asset}")
    assert first.status_code == 200
    assert first.headers["content-type"].encode() == CONTENT_TYPES[asset[asset.rfind(".") :]]
    assert first.headers["cache-control"] == "no-cache"
    assert first.headers["x-content-type-options"] == "nosniff"
    etag = first.headers["etag"]

    again = client.get(f"/dashboard/{asset}", headers={"if-none-match": f'W/{etag}, "other"'})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert client.get(f"/dashboard/{asset}", headers={"if-none-match": '"stale"'}).status_code == 200


def raw_status(base_url: str, target: bytes) -> int:
    """The status for a request target sent byte for byte (httpx would normalise `..` away)."""
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        head = sock.recv(64)
    return int(head.split(b" ")[1])


@pytest.mark.parametrize(
    "target",
    [
        b"/dashboard/../app.py",
        b"/dashboard/..%2Fapp.py",
        b"/dashboard/%2e%2e%2f%2e%2e%2fconfig.py",
        b"/dashboard/README.md",  # in the folder, but not a type the dashboard serves
        b"/dashboard/__init__.py",
        b"/dashboard/",
        b"/dashboard/static/app.js",
    ],
)
def test_nothing_outside_the_table_of_files_is_served(base_url: str, target: bytes) -> None:
    assert raw_status(base_url, target) == 404
