"""Our series (a name and tags) as Prometheus label sets and back, and label matchers as predicates.

The rule (docs/promql.md, "The data model"):
- our name is `__name__`; a tag `key:value` is the label `key="value"`; a tag without a key or a value (no `:`,
  or nothing on one side of it) is the label `__tag_<tag>="true"`.
- A name or label name Prometheus refuses is escaped as Prometheus 3 escapes UTF-8 names for legacy clients
  ("values" escaping): `U__`, then each `_` doubled and each refused character as `_<hex code point>_`
  (`cpu.usage_idle` is `U__cpu_2e_usage__idle`). Names already valid pass unchanged, except those that begin with
  `U__` (and label names with `__`, which Prometheus reserves): they are escaped too, so that every escaped name
  reads back as exactly one of ours.
- remote_write (ingest/remote_write.py) stores a Prometheus series' name and label names unchanged (valid
  Prometheus names are valid ours), so what it wrote reads back with the labels it was sent with.
"""

from __future__ import annotations

from collections.abc import Sequence

NAME_LABEL = "__name__"
BARE_TAG_PREFIX = "__tag_"
BARE_TAG_VALUE = "true"
ESCAPE_PREFIX = "U__"
# Several tags of one key on a series (tags are free text in the JSON API): one label holds their values.
REPEATED_KEY_SEPARATOR = ","

_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_DIGITS = frozenset("0123456789")
_LABEL_CHARS = _LETTERS | _DIGITS
_METRIC_CHARS = _LABEL_CHARS | {":"}


def _valid(text: str, chars: frozenset[str]) -> bool:
    return bool(text) and text[0] not in _DIGITS and chars.issuperset(text)


def _escape(text: str, chars: frozenset[str]) -> str:
    out = [ESCAPE_PREFIX]
    for position, char in enumerate(text):
        if char == "_":
            out.append("__")
        elif char in chars and not (position == 0 and char in _DIGITS):
            out.append(char)
        else:
            out.append(f"_{ord(char):x}_")
    return "".join(out)


def _unescape(text: str, chars: frozenset[str]) -> str | None:
    """The text `_escape` made `text` from; None when `text` is not such an escape."""
    body = text[len(ESCAPE_PREFIX) :]
    out: list[str] = []
    position = 0
    while position < len(body):
        char = body[position]
        if char != "_":
            if char not in chars:
                return None
            out.append(char)
            position += 1
        elif body.startswith("__", position):
            out.append("_")
            position += 2
        else:
            end = body.find("_", position + 1)
            code = body[position + 1 : end]
            if end < 0 or not code or not all(c in "0123456789abcdef" for c in code) or int(code, 16) > 0x10FFFF:
                return None
            out.append(chr(int(code, 16)))
            position = end + 1
    return "".join(out) if out else None


def prometheus_name(name: str) -> str:
    """The `__name__` of our metric name."""
    if _valid(name, _METRIC_CHARS) and not name.startswith(ESCAPE_PREFIX):
        return name
    return _escape(name, _METRIC_CHARS)


def our_name(name: str) -> str | None:
    """Our metric name for a `__name__`; None when no name of ours has it (a `U__` name that is no escape)."""
    if name.startswith(ESCAPE_PREFIX):
        return _unescape(name, _METRIC_CHARS)
    return name or None


def label_name(key: str) -> str:
    """The label name of a tag key."""
    if _valid(key, _LABEL_CHARS) and not key.startswith(("__", ESCAPE_PREFIX)):
        return key
    return _escape(key, _LABEL_CHARS)


def bare_tag_label(tag: str) -> str:
    """The label name of a tag without a key (`__tag_<tag>`, its value BARE_TAG_VALUE)."""
    if _LABEL_CHARS.issuperset(tag) and tag and not tag.startswith(ESCAPE_PREFIX):
        return BARE_TAG_PREFIX + tag
    return BARE_TAG_PREFIX + _escape(tag, _LABEL_CHARS)


def tag_of_label(label: str, value: str) -> str | None:
    """The tag a series carries exactly when its label `label` is `value`; None when no tag says so (`__name__`,
    an empty value, a bare-tag label with another value than BARE_TAG_VALUE, a name that is no escape)."""
    if not value or label == NAME_LABEL:
        return None
    if label.startswith(BARE_TAG_PREFIX):
        if value != BARE_TAG_VALUE:
            return None
        body = label[len(BARE_TAG_PREFIX) :]
        return _unescape(body, _LABEL_CHARS) if body.startswith(ESCAPE_PREFIX) else body or None
    if label.startswith(ESCAPE_PREFIX):
        key = _unescape(label, _LABEL_CHARS)
    else:
        key = None if label.startswith("__") else label
    if key is None or REPEATED_KEY_SEPARATOR in value:
        return None  # a joined value is no single tag: such series are found by the matchers' scan
    return f"{key}:{value}"


def split_tag(tag: str) -> tuple[str, str] | None:
    """(key, value) of a tag `key:value`; None for a bare tag (no `:`, or nothing before or after it)."""
    key, colon, value = tag.partition(":")
    return (key, value) if colon and key and value else None


def series_labels(name: str, tags: Sequence[str]) -> dict[str, str]:
    """The label set of one of our series."""
    labels = {NAME_LABEL: prometheus_name(name)}
    repeated: dict[str, list[str]] = {}
    for tag in tags:
        pair = split_tag(tag)
        if pair is None:
            labels[bare_tag_label(tag)] = BARE_TAG_VALUE
            continue
        label = label_name(pair[0])
        if label in labels:
            repeated.setdefault(label, [labels[label]]).append(pair[1])
        labels[label] = pair[1]
    for label, values in repeated.items():
        labels[label] = REPEATED_KEY_SEPARATOR.join(values)
    return labels
