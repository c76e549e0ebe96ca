"""The dashboard in a real browser: Debian's chromium (scripts/browser.sh) driven by Playwright, against the
2-worker test server over a real socket. Screenshots, light and dark, are saved under TEST_ARTIFACTS_DIR
(default .artifacts/) in dashboard/."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from telemetry_server.auth.keys import generate_key
from tests.integration.conftest import ROOT, ServerProcess

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
# How long the page may take to show what it is waiting for: a bound for a loaded machine, not a speed target
# (the time a point took to reach the chart is written to the artefacts instead).
WAIT_MS = 10_000
VIEWPORT = {"width": 1400, "height": 1000}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_api.Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no chromium at {CHROMIUM}: scripts/browser.sh installs Debian's (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        # --no-sandbox: the tests may run as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("TEST_ARTIFACTS_DIR") or ROOT / ".artifacts") / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Tab:
    """A page in a fresh context, with everything it logged as an error."""

    def __init__(self, page: playwright_api.Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))


@pytest.fixture
def open_tab(browser: playwright_api.Browser) -> Iterator[Callable[..., Tab]]:
    contexts: list[playwright_api.BrowserContext] = []

    def open_(url: str, color_scheme: str = "light") -> Tab:
        context = browser.new_context(viewport=VIEWPORT, color_scheme=color_scheme)  # type: ignore[arg-type]
        contexts.append(context)
        tab = Tab(context.new_page())
        tab.page.goto(url)
        return tab

    yield open_
    for context in contexts:
        context.close()


def has_streams(client: httpx.Client) -> bool:
    return client.post("/metrics/stream/token").status_code != 404


def write_recent(client: httpx.Client, name: str, count: int) -> None:
    now = datetime.now(UTC)
    batch = [
        {
            "name": name,
            "tags": [f"host:{host}"],
            "value": round(40 + 7 * ((i * 7 + len(host) * 13) % 11) / 11 + (5 if host == "b" else 0), 2),
            "timestamp": (now - timedelta(seconds=2 * (count - i))).isoformat(),
        }
        for host in ("a", "b")
        for i in range(count)
    ]
    assert client.post("/metrics", json=batch).status_code == 201


def figures_shown(page: playwright_api.Page, rates: bool = False) -> None:
    page.wait_for_selector("#health[data-state=rates]" if rates else "#health[data-state]", timeout=WAIT_MS)


def test_the_page_loads_without_console_errors(open_tab: Callable[..., Tab], base_url: str) -> None:
    tab = open_tab(f"{base_url}/")

    figures_shown(tab.page)  # the page's scripts ran and /stats answered
    assert tab.page.title() == "telemetry-server"
    tab.page.wait_for_timeout(500)  # what the first answers set off
    assert tab.errors == []


def test_a_metric_written_appears_on_the_live_chart(
    open_tab: Callable[..., Tab], base_url: str, client: httpx.Client, metric_name: str, artifacts: Path
) -> None:
    if not has_streams(client):
        pytest.skip("this server has no /metrics/stream (POST /metrics/stream/token answers 404)")
    tab = open_tab(f"{base_url}/#name={metric_name}&window=60")
    tab.page.wait_for_selector("#stream-state[data-state=open]", timeout=WAIT_MS)

    written = client.post("/metrics", json={"name": metric_name, "tags": ["host:a"], "value": 123.25})
    acknowledged = time.monotonic()
    assert written.status_code == 201
    # A selector, not wait_for_function: Playwright evaluates a string predicate with eval while it polls, which
    # the page's Content-Security-Policy refuses (the wait failed whenever the point was not there at once).
    tab.page.wait_for_selector('#chart[data-last-value="123.25"]', state="attached", timeout=WAIT_MS)
    took_ms = (time.monotonic() - acknowledged) * 1000

    (artifacts / "live-latency.txt").write_text(f"acknowledged write to the live chart: {took_ms:.0f} ms\n")
    assert tab.page.locator("#chart canvas").count() == 1
    tab.page.wait_for_selector(f"#points-body tr[data-id='{written.json()['id']}']", timeout=WAIT_MS)
    assert tab.errors == []


def test_a_prompt_shows_its_answer_beside_its_reading(
    open_tab: Callable[..., Tab], base_url: str, client: httpx.Client, metric_name: str
) -> None:
    write_recent(client, metric_name, 3)
    tab = open_tab(f"{base_url}/")

    tab.page.fill("#prompt", f"count {metric_name} over the last hour")
    tab.page.click("#query-form button")
    tab.page.wait_for_selector("#answer[data-state=done]", timeout=WAIT_MS)

    assert tab.page.locator("#answer .big").text_content() == "6"
    reading = tab.page.locator("#interpretation").text_content() or ""
    assert "aggregate" in reading
    assert metric_name in reading
    assert "/metrics/aggregate?fn=count" in (tab.page.locator("#equivalent").text_content() or "")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots_light_and_dark(
    open_tab: Callable[..., Tab],
    base_url: str,
    client: httpx.Client,
    metric_name: str,
    artifacts: Path,
    scheme: str,
) -> None:
    write_recent(client, metric_name, 60)
    tab = open_tab(f"{base_url}/#name={metric_name}&window=300", color_scheme=scheme)
    page = tab.page
    page.wait_for_selector("#chart canvas", timeout=WAIT_MS)
    page.fill("#prompt", f"average {metric_name} over the last hour by host")
    page.click("#query-form button")
    page.wait_for_selector("#answer[data-state=done]", timeout=WAIT_MS)
    figures_shown(page, rates=True)

    page.screenshot(path=artifacts / f"dashboard-{scheme}.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)  # the chart follows its box's new width
    page.screenshot(path=artifacts / f"dashboard-{scheme}-phone.png")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing sticks out sideways
    page.set_viewport_size(VIEWPORT)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    dark = sum(int(part) for part in background[background.index("(") + 1 : -1].split(",")[:3]) < 3 * 128
    assert dark is (scheme == "dark"), background

    page.click("#theme")  # the toggle forces the other theme, whatever the system prefers
    assert page.evaluate("document.documentElement.dataset.theme") == ("light" if scheme == "dark" else "dark")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != background
    assert tab.errors == []


ADMIN_KEY = generate_key()[0]


AUTH_APP_ENV = "dashboard"


@pytest.fixture(scope="module")
def auth_server(server_factory: Callable[..., ServerProcess], mongo_uri: str) -> Iterator[ServerProcess]:
    """Its own database: the keys made here must not appear in other tests' listings."""
    yield server_factory(workers=1, APP_ENV=AUTH_APP_ENV, AUTH_ENABLED="true", BOOTSTRAP_ADMIN_KEY=ADMIN_KEY)
    with MongoClient(mongo_uri, serverSelectionTimeoutMS=5000) as mongo:
        mongo.drop_database(f"telemetry_server_{AUTH_APP_ENV}")


def test_with_auth_on_the_key_entered_opens_the_data(
    open_tab: Callable[..., Tab], auth_server: ServerProcess, metric_name: str
) -> None:
    with httpx.Client(base_url=auth_server.base_url, timeout=30) as http:
        created = http.post("/admin/keys", json={"role": "read"}, headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert created.status_code == 201, created.text
        read_key = created.json()["key"]
        written = http.post(
            "/metrics", json={"name": metric_name, "value": 1}, headers={"authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert written.status_code == 201, written.text
    tab = open_tab(f"{auth_server.base_url}/")
    page = tab.page
    page.wait_for_selector("#notice:not([hidden])", timeout=WAIT_MS)
    assert "API key" in (page.locator("#notice").text_content() or "")

    page.fill("#api-key", read_key)
    page.click("#key-form button")
    figures_shown(page)
    page.wait_for_selector("#stream-state[data-state=open]", timeout=WAIT_MS)  # the key bought a stream token
    page.fill("#prompt", f"count {metric_name} over the last hour")
    page.click("#query-form button")
    page.wait_for_selector("#answer[data-state=done]", timeout=WAIT_MS)
    assert page.locator("#answer .big").text_content() == "1"
    assert page.evaluate("localStorage.getItem('telemetry-server.api-key')") == read_key
