"""promtool (Prometheus' own client, Debian's `prometheus` package) queries this server as it queries Prometheus:
`promtool query instant|range|series|labels`, each answer read back from its JSON output."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`: apt-get install prometheus)"
)
T0 = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def counter(base_url: str) -> str:
    name = f"promtool{uuid.uuid4().hex[:8]}_bytes_total"
    body = [
        {"name": name, "tags": [f"dev:{dev}"], "value": 60.0 * i * (1 + dev), "timestamp": minute(i).isoformat()}
        for i in range(10)
        for dev in (0, 1)
    ]
    assert httpx.post(f"{base_url}/metrics", json=body, timeout=30).status_code == 201
    return name


def minute(i: int) -> datetime:
    return T0 + timedelta(minutes=i)


def promtool(*args: str) -> Any:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, "query", "-o", "json", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_instant(base_url: str, counter: str) -> None:
    at = minute(9).isoformat().replace("+00:00", "Z")
    result = promtool("instant", f"--time={at}", base_url, f"sum(rate({counter}[5m]))")
    assert [row["value"][1] for row in result] == ["3"]  # 1/s and 2/s


def test_range(base_url: str, counter: str) -> None:
    start, end = minute(5).timestamp(), minute(9).timestamp()
    window = (f"--start={start:.0f}", f"--end={end:.0f}", "--step=1m")
    result = promtool("range", *window, base_url, f'{counter}{{dev="1"}}')
    assert len(result) == 1
    assert result[0]["metric"] == {"__name__": counter, "dev": "1"}
    assert [value for _, value in result[0]["values"]] == ["600", "720", "840", "960", "1080"]


def test_series(base_url: str, counter: str) -> None:
    result = promtool("series", f"--match={counter}", base_url)
    assert sorted(result, key=lambda labels: labels["dev"]) == [
        {"__name__": counter, "dev": "0"},
        {"__name__": counter, "dev": "1"},
    ]


def test_labels(base_url: str, counter: str) -> None:
    assert counter in promtool("labels", base_url, "__name__")
    assert promtool("labels", f"--match={counter}", base_url, "dev") == ["0", "1"]
