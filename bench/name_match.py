"""CPU cost of a prompt whose metric name is a typo, against many distinct names: `python -m bench.name_match`.

Prints JSON: per name count, the CPU milliseconds (process time) of the first parse after the names change
(the index build included) and of typo prompts afterwards (each prompt new, so no answer is remembered).
Pure and in-process: no server, no database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import string
import time
from datetime import UTC, datetime
from typing import Any

from telemetry_server.errors import PromptNotUnderstood
from telemetry_server.prompt.grammar import parse_prompt
from telemetry_server.prompt.model import PromptContext

NOW = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
SEGMENTS = ("cpu", "disk", "http", "queue", "latency", "memory", "request", "duration", "errors", "temperature")


def make_names(count: int, rng: random.Random) -> tuple[str, ...]:
    """Dotted names of 10 to 45 characters, as services name their metrics."""
    names: set[str] = set()
    while len(names) < count:
        parts = rng.sample(SEGMENTS, rng.randint(2, 4))
        names.add(".".join(parts) + f".{rng.choice(string.ascii_lowercase)}{len(names)}")
    return tuple(sorted(names))


def typo_prompts(count: int, rng: random.Random) -> list[str]:
    """`average <30 random letters> today`: no grammar word, no name near it: the worst case for matching."""
    return [f"average {''.join(rng.choices(string.ascii_lowercase, k=30))} today" for _ in range(count)]


def near_prompts(names: tuple[str, ...], count: int, rng: random.Random) -> list[str]:
    """`average <a name with two letters swapped> today`: a typo that resolves to a name."""
    prompts = []
    for name in rng.sample(names, count):
        i = rng.randrange(len(name) - 1)
        prompts.append(f"average {name[:i]}{name[i + 1]}{name[i]}{name[i + 2 :]} today")
    return prompts


def cpu_ms(prompt: str, context: PromptContext) -> float:
    started = time.process_time()
    with contextlib.suppress(PromptNotUnderstood):
        parse_prompt(prompt, context)
    return (time.process_time() - started) * 1000


def measure(count: int, prompts: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    names = make_names(count, rng)
    context = PromptContext(NOW, "UTC", names)
    first = cpu_ms("average cpu.load today", context)
    typos = sorted(cpu_ms(p, context) for p in typo_prompts(prompts, rng))
    near = sorted(cpu_ms(p, context) for p in near_prompts(names, prompts, rng))
    return {
        "names": count,
        "first_prompt_ms": round(first, 2),
        "typo_ms": {"median": round(typos[len(typos) // 2], 3), "max": round(typos[-1], 3)},
        "near_typo_ms": {"median": round(near[len(near) // 2], 3), "max": round(near[-1], 3)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--names", default="2000,100000", help="comma-separated name counts")
    parser.add_argument("--prompts", type=int, default=20, help="typo prompts per name count")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    results = [measure(int(n), args.prompts, args.seed) for n in args.names.split(",")]
    print(json.dumps({"bench": "name_match", "results": results}, indent=2))


if __name__ == "__main__":
    main()
