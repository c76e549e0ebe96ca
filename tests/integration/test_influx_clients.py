"""Real line-protocol clients against a real server: the Python `influxdb-client`, the `influx` CLI importing a
file, and Telegraf's `influxdb` and `influxdb_v2` outputs. Each checks that what the client sent is exactly what
`GET /metrics` then lists: names, tags, values, timestamps to the millisecond.

A client that is not installed skips its test, saying so: scripts/test.sh installs them (scripts/agents.sh).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from telemetry_server.auth.keys import generate_key
from tests.integration.conftest import ROOT, ServerProcess

BOOTSTRAP = generate_key()[0]
# 2026-11-27T10:00:00.123456789Z: nanoseconds that the store truncates to .123
STAMP_NS = 1795773600123456789
CLIENT_TIMEOUT_SECONDS = 60
IMPORT = ("-precision", "ns", "-import", "-path")


@pytest.fixture(scope="module")
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(AUTH_ENABLED="true", BOOTSTRAP_ADMIN_KEY=BOOTSTRAP, APP_ENV="test_influx")


@pytest.fixture(scope="module")
def write_key(server: ServerProcess) -> str:
    created = httpx.post(
        f"{server.base_url}/admin/keys",
        json={"role": "write", "name": "line protocol agents"},
        headers={"authorization": f"Bearer {BOOTSTRAP}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


@pytest.fixture
def measurement() -> str:
    return f"lp_{uuid.uuid4().hex[:10]}"


def listed(server: ServerProcess, name: str) -> list[tuple[str, list[str], float, str]]:
    """What GET /metrics lists under `name`, oldest first."""
    reply = httpx.get(
        f"{server.base_url}/metrics",
        params={"name": name, "sort": "asc", "limit": 1000},
        headers={"authorization": f"Bearer {BOOTSTRAP}"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return [(m["name"], m["tags"], m["value"], m["timestamp"]) for m in reply.json()["items"]]


def test_python_influxdb_client_writes_through_api_v2(server: ServerProcess, write_key: str, measurement: str) -> None:
    influxdb_client = pytest.importorskip("influxdb_client", reason="the influxdb-client package is not installed")
    from influxdb_client.client.write_api import SYNCHRONOUS

    with influxdb_client.InfluxDBClient(url=server.base_url, token=write_key, org="any") as client:
        writer = client.write_api(write_options=SYNCHRONOUS)
        point = (
            influxdb_client.Point(measurement)
            .tag("host", "web 1")
            .tag("region", "eu")
            .field("load", 0.75)
            .field("procs", 12)
            .field("up", True)
            .time(STAMP_NS)
        )
        writer.write(bucket="telemetry", record=point)
        writer.write(bucket="telemetry", record=f"{measurement},host=web-2 load=1.5 {STAMP_NS + 1_000_000}")
        with pytest.raises(influxdb_client.rest.ApiException) as refused:
            writer.write(bucket="telemetry", record=[f"{measurement} load=", f"{measurement} load=2.5 {STAMP_NS}"])

    assert refused.value.status == 400
    assert "partial write: unable to parse" in str(refused.value.body)
    stamp, next_ms = "2026-11-27T10:00:00.123Z", "2026-11-27T10:00:00.124Z"
    assert sorted(listed(server, f"{measurement}.load")) == sorted(
        [
            (f"{measurement}.load", ["host:web 1", "region:eu"], 0.75, stamp),
            (f"{measurement}.load", ["host:web-2"], 1.5, next_ms),
            (f"{measurement}.load", [], 2.5, stamp),
        ]
    )
    assert listed(server, f"{measurement}.procs") == [
        (f"{measurement}.procs", ["host:web 1", "region:eu"], 12.0, stamp)
    ]
    assert listed(server, f"{measurement}.up") == [(f"{measurement}.up", ["host:web 1", "region:eu"], 1.0, stamp)]


def test_influx_cli_imports_a_file(server: ServerProcess, write_key: str, measurement: str, tmp_path: Path) -> None:
    program = shutil.which("influx")
    if program is None:
        pytest.skip("the influx CLI is not installed (Debian influxdb-client; scripts/agents.sh apt installs it)")
    export = tmp_path / "export.txt"
    export.write_text(
        "# DDL\nCREATE DATABASE imported\n# DML\n# CONTEXT-DATABASE: imported\n"
        f"{measurement},host=a,dc=x value=1.25 {STAMP_NS}\n"
        f"{measurement},host=b,dc=x value=-3i {STAMP_NS + 5_000_000_000}\n"
    )
    port = server.base_url.rsplit(":", 1)[1]
    done = subprocess.run(
        [
            program,
            "-host",
            "127.0.0.1",
            "-port",
            port,
            "-username",
            "cli",
            "-password",
            write_key,
            *IMPORT,
            str(export),
        ],
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_SECONDS,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Processed 2 inserts" in done.stdout
    assert "Failed 0 inserts" in done.stdout
    assert listed(server, f"{measurement}.value") == [
        (f"{measurement}.value", ["dc:x", "host:a"], 1.25, "2026-11-27T10:00:00.123Z"),
        (f"{measurement}.value", ["dc:x", "host:b"], -3.0, "2026-11-27T10:00:05.123Z"),
    ]


@pytest.fixture(scope="module")
def telegraf() -> str:
    """The cached Telegraf that scripts/test.sh builds (scripts/agents.sh telegraf); TELEGRAF_BIN overrides."""
    program = os.environ.get("TELEGRAF_BIN")
    if not program:
        found = subprocess.run(["scripts/agents.sh", "built", "telegraf"], cwd=ROOT, capture_output=True, text=True)
        program = found.stdout.strip() if found.returncode == 0 else ""
    if not program or not os.access(program, os.X_OK):
        pytest.skip("Telegraf is not built on this machine (scripts/agents.sh telegraf builds it; needs go)")
    return program


@pytest.mark.parametrize("output", ["influxdb", "influxdb_v2"])
def test_telegraf_outputs_deliver_what_they_read(
    server: ServerProcess, write_key: str, measurement: str, telegraf: str, tmp_path: Path, output: str
) -> None:
    source = tmp_path / "metrics.lp"
    source.write_text(
        f"{measurement},host=h1,cpu=cpu0 usage_idle=97.5,usage_user=2i {STAMP_NS}\n"
        f"{measurement},host=h1,cpu=cpu1 usage_idle=88,usage_user=10i {STAMP_NS}\n"
    )
    if output == "influxdb":
        settings = f'database = "telegraf"\n  username = "telegraf"\n  password = "{write_key}"'
    else:
        settings = f'token = "{write_key}"\n  organization = "any"\n  bucket = "telemetry"'
    config = tmp_path / "telegraf.conf"
    config.write_text(
        f"""
[agent]
  interval = "1s"
  flush_interval = "1s"
  precision = "1ns"
  omit_hostname = true
  quiet = true

[[inputs.file]]
  files = ["{source}"]
  data_format = "influx"

[[outputs.{output}]]
  urls = ["{server.base_url}"]
  content_encoding = "gzip"
  {settings}
"""
    )
    done = subprocess.run(
        [telegraf, "--config", str(config), "--once"],
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_SECONDS,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    stamp = "2026-11-27T10:00:00.123Z"
    assert sorted(listed(server, f"{measurement}.usage_idle")) == [
        (f"{measurement}.usage_idle", ["cpu:cpu0", "host:h1"], 97.5, stamp),
        (f"{measurement}.usage_idle", ["cpu:cpu1", "host:h1"], 88.0, stamp),
    ]
    assert sorted(listed(server, f"{measurement}.usage_user")) == [
        (f"{measurement}.usage_user", ["cpu:cpu0", "host:h1"], 2.0, stamp),
        (f"{measurement}.usage_user", ["cpu:cpu1", "host:h1"], 10.0, stamp),
    ]
