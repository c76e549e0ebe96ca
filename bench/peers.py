"""InfluxDB 1.x as a peer: started on loopback with a throwaway config, fed and asked what our server is."""

from __future__ import annotations

import shutil
import time
import urllib.parse
from pathlib import Path

from bench.processes import Child, free_port, spawn, stop, wait_for_status
from bench.seed import request

DATABASE = "bench"

_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  trace-logging-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false

[logging]
  level = "warn"

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false
"""


class Influx:
    """A running influxd: its child process and HTTP port."""

    def __init__(self, child: Child, port: int) -> None:
        self.child = child
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        stop(self.child)


def influxd_program() -> str | None:
    return shutil.which("influxd")


def influxd_version(program: str) -> str:
    import subprocess

    done = subprocess.run([program, "version"], capture_output=True, text=True, timeout=10, check=False)
    return done.stdout.strip() or "unknown"


def start_influx(program: str, folder: Path) -> Influx:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = folder / "influxdb.conf"
    config.write_text(_CONFIG.format(root=folder, rpc_port=free_port(), http_port=port))
    child = spawn("influxd", [program, "run", "-config", str(config)], folder / "influxd.log")
    try:
        wait_for_status(child, port, "/ping", expected=204, timeout=60)
        query = urllib.parse.urlencode({"q": f"CREATE DATABASE {DATABASE}"})
        status, _, body = request(port, "POST", f"/query?{query}", b"", "application/x-www-form-urlencoded")
        if status != 200:
            raise RuntimeError(f"CREATE DATABASE answered {status}: {body[:200]!r}")
        time.sleep(0.2)
    except Exception:
        stop(child)
        raise
    return Influx(child, port)


def victoria_metrics_program() -> str | None:
    return shutil.which("victoria-metrics")


def start_victoria_metrics(program: str, folder: Path, cache: bool = False) -> Influx:
    """VictoriaMetrics single-node on loopback: it takes line protocol at /write as InfluxDB does. Its query
    cache is off unless `cache`."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [program, f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={folder / 'data'}"]
    command += ["-loggerLevel=WARN", "-retentionPeriod=100y", *(() if cache else ("-search.disableCache",))]
    child = spawn("victoria-metrics", command, folder / "victoria-metrics.log")
    try:
        wait_for_status(child, port, "/health", expected=200, timeout=60)
    except Exception:
        stop(child)
        raise
    return Influx(child, port)
