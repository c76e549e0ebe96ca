"""The words of prompts: tokens, the vocabulary the grammar knows, filler words, and typo correction."""

from __future__ import annotations

import re
from collections.abc import Set

from telemetry_server.prompt.names import edit_distance
from telemetry_server.prompt.time_words import UNIT_OF_WORD

MAX_PROMPT_LENGTH = 500
_EDGE_PUNCTUATION = "?!,;\"'`()[]{}\u201c\u201d\u2018\u2019"
_NUMBERS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "ninety": 90, "hundred": 100,
}  # fmt: skip
_COMPACT_UNIT = re.compile(rf"^(\d{{1,6}})-?({'|'.join(sorted(UNIT_OF_WORD, key=len, reverse=True))})$")
_COMPARE_GLUED = re.compile(r"^(>=|<=|>|<|=)(-?\d+(?:\.\d+)?)$")
_ISO_START = re.compile(r"^\d{4}-\d{2}-\d{2}")

FN_WORDS = {
    "average": "avg", "avg": "avg", "mean": "avg", "averages": "avg",
    "sum": "sum", "total": "sum",
    "count": "count",
    "max": "max", "maximum": "max", "highest": "max", "peak": "max", "largest": "max", "biggest": "max",
    "min": "min", "minimum": "min", "lowest": "min", "smallest": "min",
    "median": "p50",
}  # fmt: skip
LISTING_WORDS = {"latest", "last", "recent", "newest", "first", "oldest", "earliest"}
LISTING_NOUNS = {"readings", "reading", "values", "points", "entries", "records", "samples", "measurements"}
LISTING_NOUNS |= {"datapoints", "rows", "metrics"}
GENERIC_GROUPS = {"metrics", "metric", "names", "name", "series", "events", "event", "measurements"}


def _words(text: str) -> set[str]:
    return set(text.split())


STOPWORDS = _words(
    """a an the of for in on at to me my our us i you your we what whats which is are was were be been
    show list get give display fetch find tell please can could would will do does did there have has had
    and with all value data about across how much many number kind want see return returned
    so far just any some metric named called where that who it its tag tags tagged label labels labelled
    labeled over time by per"""
)  # fmt: skip
VOCABULARY = set(FN_WORDS) | LISTING_WORDS | LISTING_NOUNS | GENERIC_GROUPS | set(UNIT_OF_WORD)
VOCABULARY |= _words(
    """top bottom every each grouped group hourly daily minutely percentile above below under greater less
    more fewer higher lower exceeding exceeds least most between since after before today yesterday week
    month months year this previous current past ago ascending descending order monday tuesday wednesday
    thursday friday saturday sunday january february march april june july august september october
    november december until till through than equal equals starting"""
)  # fmt: skip


def tokenize(prompt: str) -> list[str]:
    """Lower-cased tokens, edge punctuation gone; `tag:Value` and names with ':' keep their case."""
    tokens: list[str] = []
    for raw in prompt.split():
        token = raw.strip(_EDGE_PUNCTUATION).rstrip(".:").removesuffix("'s").removesuffix("\u2019s")
        if not token:
            continue
        if ":" not in token or _ISO_START.match(token):
            token = token.lower()
        token = token.removesuffix("%") if token[:1].isdigit() else token
        compact = _COMPACT_UNIT.match(token) or _COMPARE_GLUED.match(token)
        if compact:
            tokens += compact.groups()
        elif token in _NUMBERS:
            tokens.append(str(_NUMBERS[token]))
        else:
            tokens.append(token)
    return tokens


def correct_typos(tokens: list[str], known: Set[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Replace a misspelt grammar word (`averge`, `yesterdy`) by the closest word of the vocabulary.

    Only alphabetic words of five letters or more that are neither vocabulary, filler, nor part of a
    metric name are corrected: one edit allowed, two from eight letters. Returns the tokens and the
    (typed, corrected) pairs, which the interpretation shows.
    """
    corrected: list[str] = []
    corrections: list[tuple[str, str]] = []
    for token in tokens:
        if len(token) < 5 or not token.isalpha() or token in VOCABULARY or token in STOPWORDS:
            corrected.append(token)
            continue
        if token in known:
            corrected.append(token)
            continue
        limit = 1 if len(token) < 8 else 2
        best = min((edit_distance(token, word, limit), word) for word in VOCABULARY if len(word) >= 4)
        if best[0] <= limit:
            corrections.append((token, best[1]))
            corrected.append(best[1])
        else:
            corrected.append(token)
    return corrected, corrections


def singular(word: str) -> str:
    """`hosts` → `host`, `processes` → `process`: a plural noun in a prompt names a tag key."""
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word
