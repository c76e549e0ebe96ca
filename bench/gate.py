"""The gate: check a results file against bench/targets.toml; exit non-zero naming every missed target.

Usage: python -m bench.gate bench/results/<timestamp>.json [--targets bench/targets.toml]
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TARGETS = Path(__file__).resolve().parent / "targets.toml"


def load_targets(path: Path = TARGETS) -> list[dict[str, Any]]:
    """The targets with their limits worked out: `of` multiplies the limit by a baseline, `margin` adds a stricter
    copy of a target (the same figure, at most `margin` times its limit)."""
    document = tomllib.loads(path.read_text())
    baselines: dict[str, dict[str, Any]] = document.get("baseline", {})
    targets: list[dict[str, Any]] = []
    for target in document["target"]:
        target = dict(target)
        if "of" in target:
            baseline = baselines[target["of"]]["value"]
            for bound in ("max", "min"):
                if bound in target:
                    target[bound] = round(target[bound] * baseline, 3)
        targets.append(target)
        if "margin" in target:
            bound = target["max"] * target["margin"]
            name = f"{target['name']}, with margin: ≤ {target['margin']:.0%} of it"
            targets.append({**target, "name": name, "max": round(bound, 3), "inclusive": True})
    return targets


def _walk(document: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(document, dict) or key not in document:
            return None
        document = document[key]
    return document


def evaluate(results: dict[str, Any], targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One outcome per target and run: status pass, fail or skip, with the measured value and the limit."""
    fast = bool(results.get("engine", {}).get("fast"))
    outcomes = []
    for run in results.get("runs", []):
        context = {**run, "references": results.get("references", {}), "engine": results.get("engine", {})}
        for target in targets:
            value = _walk(context, target["path"])
            if "max" in target:
                bound, op = target["max"], "≤" if target.get("inclusive") else "<"
            else:
                bound, op = target["min"], "≥"
            outcome = {
                "name": target["name"],
                "workers": run.get("workers"),
                "limit": f"{op} {bound:g}",
                "value": value,
            }
            if target.get("fast_engine_only") and not fast:
                outcome |= {"status": "skip", "reason": "the fallback engine ran (not a fast engine)"}
            elif value is None:
                status = "fail" if target.get("required", True) else "skip"
                outcome |= {"status": status, "reason": "not measured"}
            else:
                ok = {"<": value < bound, "≤": value <= bound, "≥": value >= bound}[op]
                if ok:
                    outcome["status"] = "pass"
                elif target.get("goal"):  # what we aim at beyond the target: reported, never failed
                    outcome |= {"status": "short", "reason": "a goal, not a gate"}
                else:
                    outcome["status"] = "fail"
            outcomes.append(outcome)
    if not results.get("runs"):
        outcomes.append({"name": "results hold no run", "workers": None, "limit": "", "value": None, "status": "fail"})
    return outcomes


def print_outcomes(outcomes: list[dict[str, Any]]) -> int:
    """Print every outcome; return the number of failures."""
    failed = 0
    for o in outcomes:
        mark = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP", "short": "GOAL"}[o["status"]]
        value = "—" if o["value"] is None else f"{o['value']:g}" if isinstance(o["value"], float | int) else o["value"]
        reason = f" ({o['reason']})" if o.get("reason") else ""
        print(f"{mark}  [{o['workers']}w] {o['name']}: {value} (target {o['limit']}){reason}")
        failed += o["status"] == "fail"
    if failed:
        print(f"\ngate: {failed} target(s) missed:", file=sys.stderr)
        for o in outcomes:
            if o["status"] == "fail":
                print(f"  - [{o['workers']}w] {o['name']}", file=sys.stderr)
    else:
        print("\ngate: every target met")
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gate", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--targets", type=Path, default=TARGETS)
    args = parser.parse_args(argv)
    outcomes = evaluate(json.loads(args.results.read_text()), load_targets(args.targets))
    return 1 if print_outcomes(outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
