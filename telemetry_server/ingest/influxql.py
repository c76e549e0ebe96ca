"""The few InfluxQL statements agents send before they write, answered as InfluxDB answers them.

Telegraf's `outputs.influxdb` sends `CREATE DATABASE "telegraf"` on start; the `influx` CLI's `-import` sends
the file's DDL (`CREATE DATABASE`, `CREATE RETENTION POLICY`). There are no databases here (every point lands
in the one metric store), so these succeed and change nothing; reading is `GET /metrics`, not InfluxQL.
"""

from __future__ import annotations

import re
from typing import Any

# Setup statements agents send: accepted, changing nothing.
_SETUP = re.compile(r"\s*(CREATE\s+(DATABASE|RETENTION\s+POLICY)|DROP\s+RETENTION\s+POLICY)\b", re.IGNORECASE)
_SHOW_DATABASES = re.compile(r"\s*SHOW\s+DATABASES\s*", re.IGNORECASE)
# The one database listed, so that a client that checks its database exists finds one.
DATABASE = "telemetry"


class StatementRefused(ValueError):
    """A statement this server does not run; the message is what InfluxDB's `error` member carries."""


def answer_statements(text: str, *, read_only: bool = False) -> dict[str, Any]:
    """InfluxDB's `{"results": [...]}` for `;`-separated setup statements; StatementRefused for any other, and
    with `read_only` (a GET, as InfluxDB has it) for any but SHOW DATABASES."""
    results: list[dict[str, Any]] = []
    for statement in (part for part in text.split(";") if part.strip()):
        result: dict[str, Any] = {"statement_id": len(results)}
        if _SHOW_DATABASES.fullmatch(statement):
            result["series"] = [{"name": "databases", "columns": ["name"], "values": [[DATABASE]]}]
        elif read_only and _SETUP.match(statement):
            raise StatementRefused(f"{' '.join(statement.split()[:2]).upper()} is only allowed with POST")
        elif not _SETUP.match(statement):
            shown = " ".join(statement.split())[:64]
            raise StatementRefused(
                f"error parsing query: only CREATE DATABASE, CREATE/DROP RETENTION POLICY and SHOW DATABASES are "
                f"answered here (as no-ops), not {shown!r}; read with GET /metrics"
            )
        results.append(result)
    if not results:
        raise StatementRefused('missing required parameter "q"')
    return {"results": results}
