"""Point ids: the hex form and its parts, the legacy form, and the sequence numbers of one writer."""

from __future__ import annotations

import pytest

from telemetry_server.models.point_id import (
    MAX_MILLIS,
    MAX_SEQ,
    MAX_SERIES,
    PointId,
    SeqCounter,
    decode_point_id,
    is_legacy_id,
    is_point_id,
)

LEGACY = "0123456789abcdef01234567"


@pytest.mark.parametrize(
    "point", [PointId(0, 0, 0), PointId(1, 1_764_237_600_000, 2**32 + 5), PointId(MAX_SERIES, MAX_MILLIS, MAX_SEQ)]
)
def test_an_id_decodes_to_the_parts_it_was_encoded_from(point: PointId) -> None:
    text = point.encode()

    assert len(text) == 36
    assert is_point_id(text)
    assert not is_legacy_id(text)
    assert decode_point_id(text) == point


def test_ids_of_one_series_and_millisecond_sort_as_their_sequence_numbers() -> None:
    ids = [PointId(3, 1000, seq).encode() for seq in (2**32 + 1, 7, 2**40, 0)]

    assert sorted(ids) == [PointId(3, 1000, seq).encode() for seq in (0, 7, 2**32 + 1, 2**40)]


def test_a_legacy_id_is_an_id_without_parts() -> None:
    assert is_point_id(LEGACY)
    assert is_legacy_id(LEGACY)
    assert decode_point_id(LEGACY) is None


@pytest.mark.parametrize(
    "text", ["", "0" * 35, "0" * 37, "0" * 23, "g" * 36, "A" * 36, "0" * 34 + "-1", "0" * 24 + " "]
)
def test_malformed_ids(text: str) -> None:
    assert not is_point_id(text)
    assert not is_legacy_id(text)
    assert decode_point_id(text) is None


def test_a_writer_issues_numbers_above_its_id_and_never_twice() -> None:
    counter = SeqCounter(5)

    first, second = counter.take(3), counter.take(2)

    assert list(first) == [5 << 32, (5 << 32) + 1, (5 << 32) + 2]
    assert list(second) == [(5 << 32) + 3, (5 << 32) + 4]
    assert not counter.exhausted


def test_two_writers_never_issue_the_same_number() -> None:
    assert not set(SeqCounter(1).take(1000)) & set(SeqCounter(2).take(1000))


def test_a_writer_refuses_more_numbers_than_it_has_left() -> None:
    counter = SeqCounter(0xFFFF_FFFF)
    counter.take(0xFFFF_FFFF)

    with pytest.raises(OverflowError):
        counter.take(2)
    assert list(counter.take(1)) == [MAX_SEQ]
    assert counter.exhausted


@pytest.mark.parametrize("writer", [-1, 2**32])
def test_a_writer_id_is_a_u32(writer: int) -> None:
    with pytest.raises(ValueError, match="u32"):
        SeqCounter(writer)
