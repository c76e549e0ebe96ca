"""Vendors the strict JSON schemas of the Kubernetes kinds deploy/kubernetes/ uses, for kubeconform, offline.

kubeconform's default schemas are fetched from the network, which our machines cannot reach. The PyPI package
kubernetes-validate ships the same kubernetes-json-schema set (`vX-local-strict`: one file per kind, every
type in a shared `_definitions.json`); this inlines, for each kind we use, the definitions it reaches, so each
file stands alone (kubeconform's `-standalone-strict` layout), and drops the descriptions (documentation only).

    pip download --no-deps kubernetes-validate==1.37.0 -d /tmp/kv
    .venv/bin/python scripts/kubernetes_schemas.py /tmp/kv/kubernetes_validate-1.37.0-py3-none-any.whl
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

KUBERNETES_VERSION = "1.33.0"
KINDS = (
    "configmap-v1",
    "secret-v1",
    "service-v1",
    "deployment-apps-v1",
    "poddisruptionbudget-policy-v1",
    "horizontalpodautoscaler-autoscaling-v2",
    "networkpolicy-networking-v1",
)
# A kind's file refers to the shared file; the definitions there refer to each other within it.
_REF_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")
TARGET = Path(__file__).resolve().parents[1] / "deploy/kubernetes/schemas" / f"v{KUBERNETES_VERSION}-standalone-strict"


def standalone(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """The schema with the definitions it reaches inlined under its own `$defs`, refs pointing there."""
    reached: dict[str, Any] = {}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "description" and isinstance(value, str):
                    continue
                if key == "$ref" and isinstance(value, str) and value.startswith(_REF_PREFIXES):
                    name = value.split("/$defs/", 1)[1]
                    if name not in reached:
                        reached[name] = None  # placeholder first: definitions refer to themselves
                        reached[name] = rewrite(definitions[name])
                    out[key] = f"#/$defs/{name}"
                else:
                    out[key] = rewrite(value)
            return out
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    result: dict[str, Any] = rewrite({k: v for k, v in schema.items() if k != "$id"})
    result["$defs"] = dict(sorted(reached.items()))
    return result


def main(wheel: str) -> int:
    folder = f"kubernetes_validate/kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict"
    with zipfile.ZipFile(wheel) as archive:
        definitions = json.loads(archive.read(f"{folder}/_definitions.json"))["$defs"]
        TARGET.mkdir(parents=True, exist_ok=True)
        for kind in KINDS:
            schema = json.loads(archive.read(f"{folder}/{kind}.json"))
            (TARGET / f"{kind}.json").write_text(json.dumps(standalone(schema, definitions), indent=1) + "\n")
            print(f"{TARGET / kind}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
