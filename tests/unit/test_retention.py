"""Retention cutoffs and rollup intervals (models/retention.py), and their settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from telemetry_server.config import load_settings
from telemetry_server.errors import ConfigurationError
from telemetry_server.models.retention import RollupSize, clamp_start, interval_start, retention_cutoff

NOW = datetime(2026, 11, 28, 10, 0, 0, 123_456, tzinfo=UTC)


def test_no_cutoff_without_retention() -> None:
    assert retention_cutoff(NOW, None) is None
    assert clamp_start(None, None) is None
    assert clamp_start(NOW, None) == NOW


def test_the_cutoff_is_now_less_retention_in_whole_milliseconds() -> None:
    cutoff = retention_cutoff(NOW, timedelta(days=30))

    assert cutoff == datetime(2026, 10, 29, 10, 0, 0, 123_000, tzinfo=UTC)


def test_a_window_starts_at_the_cutoff_at_the_earliest() -> None:
    cutoff = NOW - timedelta(days=1)

    assert clamp_start(None, cutoff) == cutoff
    assert clamp_start(cutoff - timedelta(milliseconds=1), cutoff) == cutoff
    assert clamp_start(cutoff + timedelta(milliseconds=1), cutoff) == cutoff + timedelta(milliseconds=1)


def test_rollup_intervals_are_aligned_to_the_epoch() -> None:
    assert interval_start(3_600_000 * 5 + 61_001, RollupSize.MINUTE) == 3_600_000 * 5 + 60_000
    assert interval_start(3_600_000 * 5 + 61_001, RollupSize.HOUR) == 3_600_000 * 5
    assert RollupSize.HOUR.collection == "rollups_1h"


def test_retention_and_rollups_are_read() -> None:
    settings = load_settings(
        {"RETENTION": "30d", "ROLLUPS": "1h, 1m,1h", "ROLLUP_RETENTION": "52w", "UPKEEP_PERIOD_SECONDS": "30"}
    )

    assert settings.retention == timedelta(days=30)
    assert settings.rollups == (RollupSize.MINUTE, RollupSize.HOUR)
    assert settings.rollup_retention == timedelta(weeks=52)
    assert settings.upkeep_period_seconds == 30


def test_retention_is_off_by_default_and_by_name() -> None:
    assert load_settings({}).retention is None
    assert load_settings({"RETENTION": "off", "ROLLUPS": "off"}).rollups == ()


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"RETENTION": "30 days"}, "RETENTION"),
        ({"RETENTION": "0d"}, "RETENTION"),
        ({"RETENTION": "1d", "ROLLUPS": "5m"}, "ROLLUPS"),
        ({"ROLLUPS": "1m"}, "ROLLUPS"),
        ({"RETENTION": "1d", "ROLLUP_RETENTION": "30d"}, "ROLLUP_RETENTION"),
        ({"RETENTION": "30d", "ROLLUPS": "1h", "ROLLUP_RETENTION": "30d"}, "ROLLUP_RETENTION"),
        ({"UPKEEP_PERIOD_SECONDS": "-1"}, "UPKEEP_PERIOD_SECONDS"),
    ],
)
def test_a_bad_retention_setting_names_its_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(environ)

    assert caught.value.variable == variable
