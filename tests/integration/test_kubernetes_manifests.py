"""deploy/kubernetes/: valid for Kubernetes (kubeconform, strict, against the schemas kept beside them, offline)
and consistent with the server (its settings load, its probes, drain and selectors fit together)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from telemetry_server.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy/kubernetes"
KUBERNETES_VERSION = "1.33.0"  # the schema set scripts/kubernetes_schemas.py vendors
SCHEMAS = f"{MANIFESTS}/schemas/{{{{ .NormalizedKubernetesVersion }}}}-standalone{{{{ .StrictSuffix }}}}/"
SCHEMAS += "{{ .ResourceKind }}{{ .KindSuffix }}.json"
GRANIAN_WORKERS_KILL_SECONDS = 30  # cli.granian_options: in-flight requests get this long after SIGTERM


@pytest.fixture(scope="module")
def kubeconform() -> str:
    binary = os.environ.get("KUBECONFORM_BIN") or str(
        Path.home() / ".cache/telemetry-server/tools/kubeconform-v0.7.0/kubeconform"
    )
    if not Path(binary).is_file():
        pytest.skip("kubeconform is not built (scripts/fleet.sh kubeconform builds it with Go)")
    return binary


def validate(kubeconform: str, *paths: Path) -> tuple[int, list[dict[str, Any]]]:
    command = [kubeconform, "-strict", "-verbose", "-output", "json", "-kubernetes-version", KUBERNETES_VERSION]
    command += ["-schema-location", SCHEMAS, "-skip", "Kustomization", *map(str, paths)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout)["resources"]


def documents() -> dict[str, dict[str, Any]]:
    """Every manifest by `Kind/name`."""
    found = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            found[f"{document['kind']}/{document.get('metadata', {}).get('name', '')}"] = document
    return found


def test_every_manifest_is_valid_against_the_kubernetes_schemas(kubeconform: str) -> None:
    status, resources = validate(kubeconform, *sorted(MANIFESTS.glob("*.yaml")))

    assert status == 0, resources
    by_status = {(r["kind"], r["status"]) for r in resources}
    assert by_status == {
        ("Kustomization", "statusSkipped"),
        *((kind, "statusValid") for kind in ("ConfigMap", "Secret", "Service", "Deployment")),
        *((kind, "statusValid") for kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy")),
    }


def test_a_misspelt_field_is_refused(kubeconform: str, tmp_path: Path) -> None:
    """The schemas are strict and really applied: a typo is not silently ignored."""
    misspelt = tmp_path / "deployment.yaml"
    misspelt.write_text((MANIFESTS / "deployment.yaml").read_text().replace("readinessProbe:", "readinesProbe:"))

    status, resources = validate(kubeconform, misspelt)

    assert status == 1
    assert "readinesProbe" in resources[0]["msg"]


def test_the_kustomization_names_every_manifest() -> None:
    listed = set(documents()["Kustomization/"]["resources"])

    assert listed == {path.name for path in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}


def test_the_config_and_secret_are_settings_the_server_accepts() -> None:
    manifests = documents()
    environ = {**manifests["ConfigMap/telemetry-server"]["data"], **manifests["Secret/telemetry-server"]["stringData"]}

    settings = load_settings(environ)

    assert settings.environment == "prod"
    assert settings.auth_enabled
    assert settings.host == "0.0.0.0"


def test_probes_drain_and_selectors_fit_together() -> None:
    manifests = documents()
    deployment = manifests["Deployment/telemetry-server"]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    labels = pod["metadata"]["labels"]
    drain = int(manifests["ConfigMap/telemetry-server"]["data"]["SHUTDOWN_DRAIN_SECONDS"])

    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["spec"]["terminationGracePeriodSeconds"] > pre_stop + drain + GRANIAN_WORKERS_KILL_SECONDS
    sources = [(kind, ref["name"]) for source in container["envFrom"] for kind, ref in source.items()]
    assert sources == [("configMapRef", "telemetry-server"), ("secretRef", "telemetry-server")]
    for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy"):
        spec = manifests[f"{kind}/telemetry-server"]["spec"]
        selector = spec.get("selector", spec.get("podSelector"))
        selector = selector.get("matchLabels", selector)
        assert selector.items() <= labels.items(), kind
    target = manifests["HorizontalPodAutoscaler/telemetry-server"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "telemetry-server")
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it
