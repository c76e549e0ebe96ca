"""Real remote_write senders against the server: Prometheus (Debian `prometheus`) scraping a target, and vmagent
(Debian `victoria-metrics`). What each sent must be exactly what GET /metrics lists: names, tags, values and
timestamps to the millisecond. What Prometheus sent is what its own TSDB holds (its query API); what vmagent sent
is what a VictoriaMetrics it writes to at the same time holds (its export API)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import orjson

from telemetry_server import engines
from tests.integration.agents import Row, listed, program, running, scrape_target
from tests.integration.conftest import wait_until

SCRAPES = 3
SETTLE_SECONDS = 60  # Prometheus' first remote write comes ~7 s after it starts; a slow machine takes longer


def exposition(prefix: str, scrape: int) -> str:
    """Counters, a gauge, a classic histogram and a summary whose values change with each scrape; label values
    with spaces, punctuation and non-ASCII letters."""
    n = scrape
    return f"""# TYPE {prefix}_requests_total counter
{prefix}_requests_total{{method="GET",path="/a b/été"}} {n}
{prefix}_requests_total{{method="POST",path="/"}} {2 * n}
# TYPE {prefix}_temperature_celsius gauge
{prefix}_temperature_celsius{{room="lab, north"}} {21.5 + n * 0.25}
# TYPE {prefix}_latency_seconds histogram
{prefix}_latency_seconds_bucket{{le="0.1"}} {n}
{prefix}_latency_seconds_bucket{{le="1"}} {2 * n}
{prefix}_latency_seconds_bucket{{le="+Inf"}} {3 * n}
{prefix}_latency_seconds_sum {1.5 * n}
{prefix}_latency_seconds_count {3 * n}
# TYPE {prefix}_rpc_seconds summary
{prefix}_rpc_seconds{{quantile="0.5"}} 0.25
{prefix}_rpc_seconds{{quantile="0.99"}} 0.75
{prefix}_rpc_seconds_sum {n}
{prefix}_rpc_seconds_count {4 * n}
"""


def as_rows(series: list[dict[str, object]], key: str) -> set[Row]:
    """Prometheus-shaped series (labels, and samples under `key`) as rows: the metric named by `__name__`, the
    other labels as sorted `name:value` tags."""
    rows: set[Row] = set()
    for item in series:
        labels = dict(item["metric"])  # type: ignore[call-overload]
        name = labels.pop("__name__")
        tags = tuple(sorted(f"{k}:{v}" for k, v in labels.items()))
        for stamp, value in item[key]:  # type: ignore[attr-defined]
            millis = round(float(stamp) * 1000) if key == "values" else int(stamp)
            rows.add((name, tags, millis, float(value)))
    return rows


def test_prometheus_remote_write_stores_exactly_what_it_sent(
    client: httpx.Client, base_url: str, tmp_path: Path
) -> None:
    prometheus = program("prometheus", "prometheus")
    job = f"prom-{uuid.uuid4().hex[:10]}"
    prefix = f"t_{uuid.uuid4().hex[:10]}"
    with scrape_target(lambda n: exposition(prefix, n)) as target:
        port = engines.free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            orjson.dumps(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "500ms"},
                    "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}],
                    "remote_write": [
                        {
                            "url": f"{base_url}/api/v1/write",
                            "queue_config": {"batch_send_deadline": "1s", "min_backoff": "100ms"},
                            "metadata_config": {"send": False},
                        }
                    ],
                }
            ).decode()  # JSON is YAML
        )
        command = [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}"]
        command += [f"--web.listen-address={engines.LOOPBACK}:{port}", "--log.level=warn"]
        with (
            running("prometheus", command, port, tmp_path / "prometheus.log"),
            httpx.Client(base_url=f"http://{engines.LOOPBACK}:{port}", timeout=10) as peer,
        ):

            def scraped() -> list[dict[str, object]]:
                reply = peer.get("/api/v1/query", params={"query": f'up{{job="{job}"}}[1h]'})
                result: list[dict[str, object]] = reply.json()["data"]["result"] if reply.status_code == 200 else []
                return result

            assert wait_until(lambda: bool(scraped()) and len(scraped()[0]["values"]) >= SCRAPES, SETTLE_SECONDS)
            # Every sample up to the last committed scrape (a scrape's samples share its timestamp)
            last = max(millis for _, _, millis, _ in as_rows(scraped(), "values"))
            reply = peer.get("/api/v1/query", params={"query": f'{{job="{job}"}}[1h]', "time": f"{last / 1000:.3f}"})
            sent = as_rows(reply.json()["data"]["result"], "values")

            assert {name for name, *_ in sent} >= {"up", f"{prefix}_requests_total", f"{prefix}_latency_seconds_bucket"}
            assert wait_until(lambda: listed(client, f"job:{job}", last + 1) >= sent, SETTLE_SECONDS), sent - listed(
                client, f"job:{job}", last + 1
            )
            assert listed(client, f"job:{job}", last + 1) == sent


def test_vmagent_remote_write_stores_exactly_what_it_sent(client: httpx.Client, base_url: str, tmp_path: Path) -> None:
    vmagent = program("vmagent", "victoria-metrics")
    victoria = program("victoria-metrics", "victoria-metrics")
    job = f"vmagent-{uuid.uuid4().hex[:10]}"
    prefix = f"t_{uuid.uuid4().hex[:10]}"
    peer_port, agent_port = engines.free_port(), engines.free_port()
    peer_url = f"http://{engines.LOOPBACK}:{peer_port}"
    peer_command = [victoria, f"-storageDataPath={tmp_path / 'vm'}", f"-httpListenAddr={engines.LOOPBACK}:{peer_port}"]
    peer_command += ["-search.latencyOffset=0s", "-loggerLevel=ERROR"]
    with (
        scrape_target(lambda n: exposition(prefix, n)) as target,
        running("victoria-metrics", peer_command, peer_port, tmp_path / "vm.log"),
        httpx.Client(base_url=peer_url, timeout=10) as peer,
    ):
        config = tmp_path / "scrape.yml"
        config.write_text(
            orjson.dumps(
                {
                    "global": {"scrape_interval": "1s"},
                    "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}],
                }
            ).decode()
        )
        command = [vmagent, f"-promscrape.config={config}", f"-httpListenAddr={engines.LOOPBACK}:{agent_port}"]
        command += [f"-remoteWrite.url={base_url}/api/v1/write", f"-remoteWrite.url={peer_url}/api/v1/write"]
        command += [f"-remoteWrite.tmpDataPath={tmp_path / 'vmagent'}", "-remoteWrite.flushInterval=1s"]
        command += ["-loggerLevel=ERROR"]
        with running("vmagent", command, agent_port, tmp_path / "vmagent.log"):

            def received() -> set[Row]:
                peer.get("/internal/force_flush")
                reply = peer.get("/api/v1/export", params={"match[]": f'{{job="{job}"}}'})
                series = [orjson.loads(line) for line in reply.content.splitlines() if line.strip()]
                for item in series:
                    item["samples"] = list(zip(item.pop("timestamps"), item.pop("values"), strict=True))
                return as_rows(series, "samples")

            assert wait_until(lambda: len({m for _, _, m, _ in received()}) >= SCRAPES, SETTLE_SECONDS)
        # vmagent stopped: both have all it will send
        time.sleep(1)
        sent = received()

    assert {name for name, *_ in sent} >= {"up", f"{prefix}_requests_total", f"{prefix}_latency_seconds_bucket"}
    assert wait_until(lambda: listed(client, f"job:{job}") >= sent, SETTLE_SECONDS)
    assert listed(client, f"job:{job}") == sent
