"""Prompts to queries by rules and keywords: pure and deterministic, given `now`, a zone and the names.

The grammar is a sequence of extractions over the normalised prompt (see docs/query.md): tags, one time
phrase, value comparisons, top-k, buckets, groups, listing words, the function; what is left must be
filler or one metric name. Anything else is refused with PromptNotUnderstood: never a silent guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

from telemetry_server.errors import PromptNotUnderstood
from telemetry_server.models.aggregation import (
    BUCKET_SIZES,
    MAX_TOP,
    AggregateFn,
    AggregateQuery,
    Bucket,
    BucketUnit,
    bucket_labels,
    check_query,
)
from telemetry_server.models.metric import check_tags
from telemetry_server.models.metric_query import MetricQuery, SortOrder
from telemetry_server.models.value_range import ValueRange
from telemetry_server.prompt.model import ParsedPrompt, PromptContext
from telemetry_server.prompt.names import MatchKind, NameIndex, NameMatch, resolve_name
from telemetry_server.prompt.time_phrases import CUT, extract_window
from telemetry_server.prompt.time_words import UNIT_OF_WORD, UNIT_PATTERN, TimePhraseError, TimeWindow
from telemetry_server.prompt.words import (
    FN_WORDS,
    GENERIC_GROUPS,
    LISTING_NOUNS,
    MAX_PROMPT_LENGTH,
    STOPWORDS,
    correct_typos,
    singular,
    tokenize,
)

EXAMPLES = (
    "what are the top 5 events today",
    "top 3 hosts by average cpu.load this week",
    "average latency.ms over the last hour",
    "p95 of http.request.duration yesterday",
    "max temperature for tag room:kitchen since monday",
    "how many errors in the last 15 minutes",
    "show the latest 10 cpu.load readings",
    "last 20 metrics with tag env:prod",
    "cpu.load per hour today",
    "requests per 5 minutes over the last 2 hours",
    "readings of disk.used above 90 today",
)
DEFAULT_LISTING_SIZE = 10
_S, _E = r"(?<= )", r"(?= )"  # tokens are space-separated: these stand where \b cannot (before `>`)
_NUMBER = r"-?\d+(?:\.\d+)?"
_COMPARISON = re.compile(
    rf"{_S}(?:(?:is|are|was|were|with values?|values?) )?(?P<op>above|over|greater than|more than|higher than"
    r"|exceeding|exceeds|at least|below|under|less than|fewer than|lower than|at most|>=|<=|>|<|=|equal to"
    rf"|equals)(?P<eq> or equal to)? (?P<num>{_NUMBER}){_E}"
)
_GT = {"above", "over", "greater than", "more than", "higher than", "exceeding", "exceeds", ">"}
_LT = {"below", "under", "less than", "fewer than", "lower than", "<"}
_PERCENTILE = re.compile(
    rf"{_S}(?:the )?(?:p ?(?P<a>\d{{1,3}})|(?P<b>\d{{1,3}})(?:th|st|nd|rd)? percentile|percentile (?P<c>\d{{1,3}})){_E}"
)
_COUNT = re.compile(rf"{_S}(?:how many|(?:the )?(?:total )?(?:number|count) of|total count|count){_E}")
_TOP = re.compile(rf"{_S}(?P<dir>top|bottom)(?: (?P<n>\d{{1,6}}))? (?P<noun>[a-z][\w.\-/]*){_E}")
_WHICH = re.compile(
    rf"{_S}(?:which|what) (?:(?P<n>\d{{1,6}}) )?(?P<noun>[a-z][\w.\-/]*) (?:have|has|had|with|show) (?:the )?"
    rf"(?P<w>highest|lowest|most|least|fewest|largest|smallest){_E}"
)
_ORDER = re.compile(
    rf"{_S}(?:(?:with|having|by|in) )?(?:the )?(?P<w>highest|lowest|most|least|fewest|largest|smallest|biggest"
    rf"|ascending|descending|asc|desc)(?: order)?{_E}"
)
_ASCENDING = {"lowest", "least", "fewest", "smallest", "ascending", "asc", "bottom"}
_BUCKET = re.compile(
    rf"{_S}(?:(?:per|every|each|by|in) (?:(?P<n>\d{{1,3}}) ?)?(?P<unit>{UNIT_PATTERN})(?: buckets?| bins?| intervals?)?"
    rf"|(?P<n2>\d{{1,3}}) (?P<unit2>{UNIT_PATTERN}) (?:buckets?|bins?|intervals?|resolution|granularity)"
    rf"|(?P<word>hourly|daily|minutely)){_E}"
)
_WORD_BUCKETS = {"hourly": "h", "daily": "d", "minutely": "m"}
_GROUP = re.compile(
    rf"{_S}(?:grouped by|group by|broken down by|split by|for each|for every|per|by|each) (?:the )?"
    rf"(?P<key>[a-z][\w.\-/]*){_E}"
)
_LISTING = re.compile(
    rf"{_S}(?P<w>latest|last|most recent|recent|newest|first|oldest|earliest)(?: (?P<n>\d{{1,6}}))?{_E}"
)
_OLDEST = {"first", "oldest", "earliest"}
_NAME_GROUPS = {"name", "names", "metric", "metrics"}


def not_understood(part: str, reason: str) -> PromptNotUnderstood:
    return PromptNotUnderstood(part.strip(" ;") or "(empty)", reason, EXAMPLES)


@dataclass(slots=True)
class _Reading:
    """What the extractions found so far; `text` shrinks as they cut out what they understood."""

    text: str
    tags: list[str] = field(default_factory=list)
    window: TimeWindow | None = None
    values: dict[str, float] = field(default_factory=dict)
    fn: AggregateFn | None = None
    top: int | None = None
    top_noun: str | None = None
    order: SortOrder = SortOrder.DESC
    bucket: Bucket | None = None
    group_by: str | None = None
    listing: str | None = None
    limit: int | None = None
    listing_noun: bool = False

    def cut(
        self, pattern: re.Pattern[str], handle: Callable[[re.Match[str]], bool | None], every: bool = False
    ) -> None:
        """Hand each match to `handle` and cut it out, unless `handle` declines it by returning False."""
        position = 0
        while (match := pattern.search(self.text, position)) is not None:
            if handle(match) is False:
                position = match.end()
                continue
            self.text = self.text[: match.start()] + CUT + self.text[match.end() :]
            if not every:
                return

    def set_fn(self, fn: AggregateFn, part: str) -> None:
        if self.fn is not None and self.fn is not fn:
            raise not_understood(part, f"asks for both {self.fn.value} and {fn.value}: ask for one")
        self.fn = fn


def parse_prompt(prompt: str, context: PromptContext) -> ParsedPrompt:
    """The query a prompt asks for; PromptNotUnderstood names the part that matched no rule."""
    if len(prompt) > MAX_PROMPT_LENGTH:
        raise not_understood(prompt[:40] + "...", f"a prompt holds at most {MAX_PROMPT_LENGTH} characters")
    tokens, corrections = correct_typos(tokenize(prompt), context.index.words)
    if not tokens:
        raise not_understood("", "the prompt is empty")
    reading = _Reading(f" {' '.join(tokens)} ")
    _extract_tags(reading, context.index.lower_names)
    try:
        reading.window, reading.text = extract_window(reading.text, context.now, ZoneInfo(context.tz))
    except TimePhraseError as exc:
        raise not_understood(exc.phrase, str(exc)) from None
    reading.cut(_COMPARISON, lambda m: _compare(reading, m), every=True)
    reading.cut(_PERCENTILE, lambda m: _percentile(reading, m), every=True)
    reading.cut(_COUNT, lambda m: reading.set_fn(AggregateFn.COUNT, m.group(0)))
    reading.cut(_TOP, lambda m: _top(reading, m))
    if reading.top is None:
        reading.cut(_WHICH, lambda m: _top(reading, m))
    if reading.top is not None:
        reading.cut(_ORDER, lambda m: _order(reading, m.group("w")), every=True)
    reading.cut(_BUCKET, lambda m: _bucket(reading, m))
    reading.cut(_GROUP, lambda m: _group(reading, m, context.index.lower_names), every=True)
    reading.cut(_LISTING, lambda m: _listing(reading, m))
    name_text = _leftover_name(reading)
    return _build(reading, name_text, context, tuple(corrections))


# "in region eu", "for host web-1": a tag said in words, for the tag keys people say that way.
_TAG_PHRASE = re.compile(
    r" (?:in|for|on|at|from) (?P<key>region|host|env|environment|service|zone|dc|datacenter|cluster|room|az)"
    r" (?P<value>[a-z0-9][\w.\-]*)(?= )",
    re.IGNORECASE,
)


def _extract_tags(reading: _Reading, lower_names: frozenset[str]) -> None:
    def said_in_words(match: re.Match[str]) -> str:
        reading.tags.append(f"{match.group('key').lower()}:{match.group('value')}")
        return ""

    reading.text = _TAG_PHRASE.sub(said_in_words, reading.text)
    words = reading.text.split(" ")
    kept = []
    for word in words:
        if ":" in word and not word[:1].isdigit() and word.lower() not in lower_names:
            reading.tags.append(word)
        else:
            kept.append(word)
    reading.text = " ".join(kept)
    problems: list[str] = []
    check_tags(reading.tags, lambda _, message: problems.append(message))
    if problems:
        raise not_understood(" ".join(reading.tags), f"tags {problems[0]}")


def _compare(reading: _Reading, match: re.Match[str]) -> None:
    op, number = match.group("op"), float(match.group("num"))
    if op in ("=", "equal to", "equals"):
        reading.values.update(gte=number, lte=number)
    elif op in _GT:
        reading.values["gte" if match.group("eq") else "gt"] = number
    elif op in _LT:
        reading.values["lte" if match.group("eq") else "lt"] = number
    else:
        reading.values["gte" if op in (">=", "at least") else "lte"] = number


def _percentile(reading: _Reading, match: re.Match[str]) -> None:
    value = match.group("a") or match.group("b") or match.group("c")
    try:
        fn = AggregateFn(f"p{int(value)}")
    except ValueError:
        raise not_understood(match.group(0), "the percentiles are p50, p90, p95 and p99") from None
    reading.set_fn(fn, match.group(0))


def _top(reading: _Reading, match: re.Match[str]) -> None:
    reading.top = int(match.group("n") or 10)
    reading.top_noun = match.group("noun")
    groups = match.groupdict()
    word = groups.get("dir") or groups.get("w") or "top"
    reading.order = SortOrder.ASC if word in _ASCENDING else SortOrder.DESC
    if not 1 <= reading.top <= MAX_TOP:
        raise not_understood(match.group(0), f"top-k needs k from 1 to {MAX_TOP}")


def _order(reading: _Reading, word: str) -> None:
    reading.order = SortOrder.ASC if word in _ASCENDING else SortOrder.DESC


def _bucket(reading: _Reading, match: re.Match[str]) -> None:
    if match.group("word"):
        unit, size = _WORD_BUCKETS[match.group("word")], 1
    else:
        unit = UNIT_OF_WORD[match.group("unit") or match.group("unit2")]
        size = int(match.group("n") or match.group("n2") or 1)
    if unit not in ("m", "h", "d"):
        raise not_understood(match.group(0), "buckets are minutes, hours or one day")
    if size not in BUCKET_SIZES[unit]:
        raise not_understood(match.group(0), f"bucket sizes are {', '.join(bucket_labels())}")
    reading.bucket = Bucket(size, BucketUnit(unit))


def _group(reading: _Reading, match: re.Match[str], lower_names: frozenset[str]) -> bool:
    key = match.group("key")
    if key in FN_WORDS or key in STOPWORDS:
        return False  # `by average`: the function, read later
    if key in lower_names:
        return False  # `count by cpu.load`, `top 3 hosts by cpu.load`: the metric, not a tag key
    if reading.group_by is not None:
        raise not_understood(match.group(0), f"already grouped by {reading.group_by}: group by one key")
    reading.group_by = "name" if key in _NAME_GROUPS else singular(key)
    return True


def _listing(reading: _Reading, match: re.Match[str]) -> None:
    reading.listing = match.group("w")
    reading.limit = int(match.group("n")) if match.group("n") else None


def _leftover_name(reading: _Reading) -> str | None:
    """The words nobody claimed: filler, function words, listing nouns, and at most one name."""
    rest: list[str] = []
    for word in reading.text.split():
        if word == CUT.strip() or word in STOPWORDS:
            continue
        if word in LISTING_NOUNS:
            reading.listing_noun = True
        elif word in FN_WORDS:
            reading.set_fn(AggregateFn(FN_WORDS[word]), word)
        else:
            rest.append(word)
    return " ".join(rest) or None


def _build(
    reading: _Reading, name_text: str | None, context: PromptContext, corrections: tuple[tuple[str, str], ...]
) -> ParsedPrompt:
    match = _resolve(name_text, context.index) if name_text else None
    defaults: list[str] = []
    group_by, prefix = reading.group_by, None
    if reading.top_noun is not None:
        group_by, prefix = _top_group(reading.top_noun, match, context.index)
        if reading.group_by is not None and reading.group_by != group_by:
            reason = f"top {reading.top_noun} groups by {group_by} already: name a metric after `by`"
            raise not_understood(f"by {reading.group_by}", reason)
    name = match.name if match else None
    prefix = prefix or (match.prefix if match else None)
    window = reading.window or TimeWindow(None, None)
    values = ValueRange(**reading.values)
    aggregate = reading.fn or reading.top or reading.bucket or group_by
    if (reading.listing or reading.listing_noun or values.bounded) and not aggregate:
        if prefix is not None:
            raise not_understood(
                name_text or "", f"{match.candidates if match else 'several'} metrics start with it: name one"
            )
        limit = min(reading.limit or DEFAULT_LISTING_SIZE, context.max_limit)
        if reading.limit is None:
            defaults.append(f"limit={limit}")
        order = SortOrder.ASC if reading.listing in _OLDEST else SortOrder.DESC
        listing = MetricQuery(
            name, tuple(sorted(set(reading.tags))), window.start, window.end, limit, order, values=values
        )
        return ParsedPrompt(listing, match, reading.window, corrections, tuple(defaults))
    if reading.listing is not None:
        raise not_understood(reading.listing, "a listing word in a question about an aggregate")
    fn = reading.fn
    if fn is None:
        counted = name_text is None or _plural(name_text)
        fn = AggregateFn.COUNT if counted else AggregateFn.AVG
        defaults.append(f"fn={fn.value}")
    query = AggregateQuery(
        fn=fn,
        name=name,
        name_prefix=prefix,
        tags=tuple(sorted(set(reading.tags))),
        start=window.start,
        end=window.end,
        values=values,
        bucket=reading.bucket,
        group_by=group_by,
        top=reading.top,
        order=reading.order,
        tz=context.tz,
    )
    problems = check_query(query)
    if problems:
        raise not_understood(problems[0][0], problems[0][1])
    return ParsedPrompt(query, match, reading.window, corrections, tuple(defaults))


def _resolve(text: str, index: NameIndex) -> NameMatch:
    candidates = [text]
    if " " in text:
        candidates += [text.replace(" ", joiner) for joiner in (".", "_", "-", "")]
    for candidate in candidates:
        match = resolve_name(candidate, index)
        if match is not None and (" " not in text or match.kind is not MatchKind.CLOSEST):
            return match if candidate == text else replace(match, text=text)
    if " " in text:
        raise not_understood(text, "these words match no rule and no metric name")
    near = index.suggestions(text)
    hint = f"; the closest names are {', '.join(near)}" if near else "; no metrics are stored yet"
    raise not_understood(text, f"no metric name matches it{hint}")


def _top_group(noun: str, match: NameMatch | None, index: NameIndex) -> tuple[str, str | None]:
    """`top 5 events`: names starting with `events` ranked by name; `top 3 hosts`: the tag key `host`."""
    if match is None:
        for candidate in (noun, singular(noun)):
            first, _ = index.starting_with(candidate.lower())
            if first is not None:
                return "name", first[: len(candidate)]
    if noun in GENERIC_GROUPS or noun in _NAME_GROUPS:
        return "name", None
    return singular(noun), None


def _plural(text: str) -> bool:
    """`requests`, `errors`: a plain plural word names things counted, not a gauge averaged."""
    return text.isalpha() and text.endswith("s") and not text.endswith("ss")
