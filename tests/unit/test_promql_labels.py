"""Our series as Prometheus labels and back (promql/labels.py), and the round trip with remote_write's mapping."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemetry_server.ingest.remote_write import Label, series_identity
from telemetry_server.models.metric import NAME_CHARS
from telemetry_server.promql.labels import (
    BARE_TAG_VALUE,
    bare_tag_label,
    label_name,
    our_name,
    prometheus_name,
    series_labels,
    tag_of_label,
)

_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
names = st.text(alphabet=sorted(NAME_CHARS), min_size=1, max_size=40)
keys = st.text(alphabet=sorted(NAME_CHARS - {":"}), min_size=1, max_size=30).filter(lambda k: not k.startswith("$"))
values = st.text(min_size=1, max_size=30).filter(lambda v: v.isprintable())
bare_tags = st.text(min_size=1, max_size=30).filter(lambda t: t.isprintable() and ":" not in t)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("http_requests_total", "http_requests_total"),
        ("job:rate5m", "job:rate5m"),
        ("cpu.usage_idle", "U__cpu_2e_usage__idle"),
        ("disk-used/home", "U__disk_2d_used_2f_home"),
        ("9lives", "U___39_lives"),
        ("U__raw", "U__U____raw"),
    ],
)
def test_names_that_prometheus_refuses_are_escaped_as_prometheus_3_escapes_them(ours: str, theirs: str) -> None:
    assert prometheus_name(ours) == theirs
    assert our_name(theirs) == ours


@given(names)
def test_every_name_of_ours_has_one_valid_prometheus_name_that_reads_back(name: str) -> None:
    escaped = prometheus_name(name)
    assert _METRIC.fullmatch(escaped)
    assert our_name(escaped) == name


@given(keys, values)
def test_every_tag_key_has_a_valid_label_name_and_the_label_finds_the_tag(key: str, value: str) -> None:
    label = label_name(key)
    assert _LABEL.fullmatch(label)
    assert not label.startswith("__")
    if "," not in value:
        assert tag_of_label(label, value) == f"{key}:{value}"


@given(bare_tags)
def test_a_tag_without_a_key_is_a_label_of_its_own(tag: str) -> None:
    label = bare_tag_label(tag)
    assert _LABEL.fullmatch(label)
    assert series_labels("m", (tag,))[label] == BARE_TAG_VALUE
    assert tag_of_label(label, BARE_TAG_VALUE) == tag
    assert tag_of_label(label, "false") is None


def test_series_labels_of_keyed_bare_and_repeated_tags() -> None:
    labels = series_labels("cpu.load", ("host:a", "production", "zone:eu:west", "rack:1", "rack:2", ":odd", "k:"))
    assert labels == {
        "__name__": "U__cpu_2e_load",
        "host": "a",
        "__tag_production": "true",
        "zone": "eu:west",
        "rack": "1,2",
        "__tag_U___3a_odd": "true",
        "__tag_U__k_3a_": "true",
    }


def test_labels_no_tag_can_carry_find_none() -> None:
    assert tag_of_label("__name__", "x") is None
    assert tag_of_label("host", "") is None
    assert tag_of_label("__meta_x", "y") is None
    assert tag_of_label("U__nonsense_zz_", "y") is None
    assert our_name("U__bad_zz_") is None


label_names = st.from_regex(_LABEL, fullmatch=True).filter(lambda n: not n.startswith(("__", "U__")))
metric_names = st.from_regex(_METRIC, fullmatch=True).filter(lambda n: not n.startswith("U__") and len(n) <= 200)


@given(metric_names, st.dictionaries(label_names, values.filter(lambda v: len(v) < 100), max_size=6))
def test_what_remote_write_stored_reads_back_with_the_labels_it_was_sent_with(
    name: str, labels: dict[str, str]
) -> None:
    sent = {"__name__": name, **labels}
    encoded = tuple(Label(name=k, value=v).SerializeToString() for k, v in sent.items())
    identity = series_identity(encoded)
    assert not isinstance(identity, str), identity
    ours, tags = identity
    assert series_labels(ours, tags) == sent
