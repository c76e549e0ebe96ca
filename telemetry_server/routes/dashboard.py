"""The dashboard: `GET /` (its page) and `GET /dashboard/{asset}` (its scripts, styles and the vendored uPlot).

The files are read once per worker from the package (telemetry_server/dashboard/static) into memory; a request
names an asset only by a key of that table, so no request ever reaches the file system. Each answer carries an
ETag and `no-cache`: a browser revalidates on every load and gets a bodiless 304 while the file is unchanged.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from importlib.resources.abc import Traversable
from typing import NamedTuple

from telemetry_server.auth.policy import OPEN, Access
from telemetry_server.errors import NotFound, excerpt
from telemetry_server.http.operation import Operation
from telemetry_server.http.request import Request
from telemetry_server.http.responses import Response
from telemetry_server.http.router import Route

INDEX = "index.html"
CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",  # modules are refused under any other type
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".txt": b"text/plain; charset=utf-8",
}
# The page loads only what it is served from here, talks only to this server, and cannot be framed.
_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_COMMON = ((b"cache-control", b"no-cache"), (b"x-content-type-options", b"nosniff"))
_PAGE = ((b"content-security-policy", _CSP), (b"referrer-policy", b"no-referrer"))

_TEXT = {"schema": {"type": "string"}}
_SHOW = Operation(
    "The dashboard (an HTML page; it asks for an API key when auth is on).",
    {200: ("The page.", {"text/html": _TEXT})},
    (429,),
)
_ASSET = Operation(
    "A file of the dashboard: its scripts, styles, icon and the vendored uPlot with its licence.",
    {200: ("The file.", {content_type.split(b";")[0].decode(): _TEXT for content_type in CONTENT_TYPES.values()})},
    (404, 429),
    parameters=[{"name": "asset", "in": "path", "required": True, "schema": {"type": "string"}}],
)


class Asset(NamedTuple):
    etag: bytes
    found: Response
    unchanged: Response  # the 304


def load_assets(folder: Traversable) -> dict[str, Asset]:
    """Every file of `folder` whose suffix has a content type, by file name."""
    assets: dict[str, Asset] = {}
    for entry in folder.iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if entry.is_file() and suffix in CONTENT_TYPES:
            body = entry.read_bytes()
            etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
            headers = (*_COMMON, (b"etag", etag), *(_PAGE if suffix == ".html" else ()))
            assets[entry.name] = Asset(
                etag, Response(200, body, CONTENT_TYPES[suffix], headers), Response(304, b"", None, headers)
            )
    return assets


def etag_matches(if_none_match: bytes | None, etag: bytes) -> bool:
    """RFC 9110 §13.1.2: `*`, or one of a comma-separated list, compared weakly (a `W/` prefix is ignored)."""
    if if_none_match is None:
        return False
    candidates = [tag.strip().removeprefix(b"W/") for tag in if_none_match.split(b",")]
    return b"*" in candidates or etag in candidates


class DashboardResource:
    def __init__(self, folder: Traversable | None = None) -> None:
        self._assets = load_assets(folder or resources.files("telemetry_server.dashboard") / "static")

    async def page(self, request: Request) -> Response:
        return self._answer(request, INDEX)

    async def asset(self, request: Request) -> Response:
        return self._answer(request, request.params["asset"])

    def _answer(self, request: Request, name: str) -> Response:
        asset = self._assets.get(name)
        if asset is None:
            raise NotFound(f"the dashboard has no file {excerpt(name)}")
        return asset.unchanged if etag_matches(request.header(b"if-none-match"), asset.etag) else asset.found

    def routes(self) -> list[Route[Access]]:
        # Open: the page and its files hold no data; everything they show is asked for with the user's key.
        return [
            Route("/", ("GET",), self.page, "dashboard", role=OPEN, operation=_SHOW),
            Route("/dashboard/{asset}", ("GET",), self.asset, "dashboard_asset", role=OPEN, operation=_ASSET),
        ]
