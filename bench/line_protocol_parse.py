"""Line-protocol parsing, in-process: the maintained C parser against a hand-written one, and our whole decode.

Run: `.venv/bin/python -m bench.line_protocol_parse [--lines 5000] [--rounds 5]`. It prints µs per line of a
TSBS devops cpu line (10 tags, 10 integer fields) for `line_protocol_parser.parse_line`, for a hand-written
parser (a split on the separators, with a slower path only for lines holding escapes or quotes), and for
`decode_lines` (parse, naming rule, timestamps, one MetricInput per field). The best of the rounds is kept.
ingest/line_protocol.py cites its figures.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from line_protocol_parser import parse_line

from telemetry_server.ingest.line_protocol import Precision, decode_lines

TSBS_LINE = (
    "cpu,hostname=host_{n},region=eu-west-1,datacenter=eu-west-1a,rack=87,os=Ubuntu16.04LTS,arch=x64,team=NYC,"
    "service=18,service_version=1,service_environment=production usage_user=58i,usage_system=2i,usage_idle=24i,"
    "usage_nice=61i,usage_iowait=22i,usage_irq=63i,usage_softirq=6i,usage_steal=44i,usage_guest=80i,"
    "usage_guest_nice=38i 1451606400000000000"
)


def hand_parse(line: str) -> tuple[str, dict[str, str], dict[str, Any], int | None]:
    """What a hand-written parser does on the common path; lines with escapes or quotes would need a scanner."""
    if "\\" in line or '"' in line:
        raise NotImplementedError("escapes and quoted strings: the scanner a full parser needs")
    parts = line.split(" ")
    head, fields = parts[0], parts[1]
    measurement, *pairs = head.split(",")
    tags = dict(pair.split("=", 1) for pair in pairs)
    values: dict[str, Any] = {}
    for item in fields.split(","):
        key, raw = item.split("=", 1)
        last = raw[-1]
        if last == "i" or last == "u":
            values[key] = int(raw[:-1])
        elif raw in ("t", "T", "true", "True", "TRUE"):
            values[key] = True
        elif raw in ("f", "F", "false", "False", "FALSE"):
            values[key] = False
        else:
            values[key] = float(raw)
    return measurement, tags, values, int(parts[2]) if len(parts) > 2 else None


def best_us_per_line(work: Callable[[], object], lines: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        begun = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - begun)
    return round(best / lines * 1e6, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    lines = [TSBS_LINE.format(n=n % 100) for n in range(options.lines)]
    body = "\n".join(lines).encode()
    now = datetime.now(UTC)
    figures = {
        "line_protocol_parser.parse_line": best_us_per_line(
            lambda: [parse_line(line) for line in lines], options.lines, options.rounds
        ),
        "hand-written split (no escapes)": best_us_per_line(
            lambda: [hand_parse(line) for line in lines], options.lines, options.rounds
        ),
        "decode_lines (10 metrics a line)": best_us_per_line(
            lambda: decode_lines(body, Precision.NANOSECONDS, now, 10**9), options.lines, options.rounds
        ),
    }
    for what, micros in figures.items():
        print(f"{what:36} {micros:8.2f} µs/line")


if __name__ == "__main__":
    main()
