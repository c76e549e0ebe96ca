"""The one rule that turns a foreign name or tag (a measurement and field, a label, an attribute) into ours.

Our names hold only `letters digits _ . - : /` (models/metric.py); a tag is `key:value`, printable, not
starting with `$`. Every protocol maps through here, so that a series keeps one name whichever agent sent it.
docs/ingest.md writes the rule down; tests/unit/test_ingest_naming.py holds its examples.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from telemetry_server.models.metric import MAX_NAME_LENGTH, MAX_TAG_LENGTH, MAX_TAGS, NAME_CHARS

# Each character a name refuses becomes one `_`, as Prometheus does for OpenTelemetry names: the mapping is
# predictable from the name alone, and the common names (cpu.usage_idle, http_requests_total) pass unchanged.
# Names differing only in refused characters meet ("disk used" and "disk_used"): docs/ingest.md says so.
ESCAPE = "_"
# Measurement and field, or an OTLP metric and its suffix, are joined as our dotted names are.
SEPARATOR = "."
# A tag key may not hold ':' (the first one ends the key: `group_by` reads it so) nor start with '$'.
_KEY_CHARS = NAME_CHARS - {":"}


class NameRefused(ValueError):
    """A foreign name or tag that has no form in ours (empty, or too long once mapped); the message says why."""


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What became of a request's points: how many were stored, how many refused, and the first refusal (what
    a client is told, as InfluxDB, remote_write and OTLP each tell it)."""

    accepted: int = 0
    refused: int = 0
    first_refusal: str | None = None

    def __add__(self, other: IngestOutcome) -> IngestOutcome:
        return IngestOutcome(
            self.accepted + other.accepted,
            self.refused + other.refused,
            self.first_refusal if self.first_refusal is not None else other.first_refusal,
        )


def escape_name(text: str) -> str:
    """`text` with each character our names refuse replaced by `_` (no length check)."""
    if NAME_CHARS.issuperset(text):
        return text
    return "".join(c if c in NAME_CHARS else ESCAPE for c in text)


@functools.lru_cache(maxsize=65_536)
def metric_name(*parts: str) -> str:
    """Our name for a foreign one given in parts (measurement, field; or one name), joined with `.`; empty parts
    are left out. NameRefused when nothing is left or the result passes MAX_NAME_LENGTH (cut, two series
    would meet).

    PERF: agents repeat the same few hundred names in every batch; remembered, a name costs a dict lookup.
    """
    name = SEPARATOR.join(escape_name(part) for part in parts if part)
    if not name:
        raise NameRefused("the metric name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise NameRefused(f"the metric name {name[:40]}… is longer than {MAX_NAME_LENGTH} characters")
    return name


def tag(key: str, value: str) -> str | None:
    """Our tag `key:value` for a foreign key and value; None for an empty value (no tag, as Prometheus reads an
    empty label). The key is escaped as a name is, ':' included; a leading `$` becomes `_`. In the value only
    control characters are escaped (each becomes `_`): a value keeps its spaces, commas, colons and non-ASCII.
    NameRefused for an empty key or a tag longer than MAX_TAG_LENGTH."""
    if not value:
        return None
    if not key:
        raise NameRefused(f"a tag with the value {value[:40]!r} has an empty key")
    if not _KEY_CHARS.issuperset(key):
        key = "".join(c if c in _KEY_CHARS else ESCAPE for c in key)
    if key[0] == "$":
        key = ESCAPE + key[1:]
    if not value.isprintable():
        value = "".join(c if c.isprintable() else ESCAPE for c in value)
    text = f"{key}:{value}"
    if len(text) > MAX_TAG_LENGTH:
        raise NameRefused(f"the tag {text[:40]}… is longer than {MAX_TAG_LENGTH} characters")
    return text


def tag_set(pairs: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """Our tags for foreign key/value pairs, sorted (one series, one tag order, whatever order they came in).
    NameRefused for a bad tag, more than MAX_TAGS tags, or two pairs that meet once escaped."""
    tags = sorted(t for key, value in pairs if (t := tag(key, value)) is not None)
    if len(tags) > MAX_TAGS:
        raise NameRefused(f"{len(tags)} tags; at most {MAX_TAGS} are stored")
    for before, after in itertools.pairwise(tags):
        if before == after:
            raise NameRefused(f"two tags become {before[:60]} once escaped")
    return tuple(tags)
