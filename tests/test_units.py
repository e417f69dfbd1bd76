"""dbops.units: one table per kind of unit, the plan's and PostgreSQL's grammars over it, and
the display formatters. Plain values, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dbops.setting_values import SettingSpec, display, same
from dbops.units import (
    format_age,
    format_duration,
    format_moment,
    format_size,
    parse_duration,
    parse_size,
    unit_family,
)


def test_each_grammar_takes_its_own_spellings_of_one_table() -> None:
    assert parse_duration("5m") == parse_duration("5min") == timedelta(minutes=5)
    assert unit_family("m") is None  # PostgreSQL has no `m`
    timeout = SettingSpec("statement_timeout", "integer", "ms")
    assert same(timeout, "5min", "300000") and same(timeout, "300s", "5min")
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("5us")  # a plan has no microseconds
    assert same(SettingSpec("commit_delay", "integer", "us"), "1ms", "1000")
    assert parse_size("2GB") == 2 * 1024**3
    assert display(SettingSpec("shared_buffers", "integer", "8kB"), "131072") == "1GB"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0, "0s"), (0.0042, "4.2ms"), (0.25, "250ms"), (7.5, "7.5s"), (30, "30s"), (90, "1m 30s"),
     (300, "5m"), (723, "12m 3s"), (5400, "1h 30m"), (86_400, "1d"), (90_000, "25h"),
     (187_200, "2d 4h"), (timedelta(days=36_500), "36500d")],
)
def test_format_duration(value: float | timedelta, shown: str) -> None:
    assert format_duration(value) == shown


def test_a_whole_plan_duration_is_shown_as_the_plan_spells_it() -> None:
    for text in ("500ms", "30s", "5m", "2h", "7d"):
        assert format_duration(parse_duration(text)) == text


def test_measured_ages_drop_the_fraction_of_a_second_and_moments_are_shown_in_utc() -> None:
    assert [format_duration(v, whole_seconds=True) for v in (0.4, 7.9, timedelta(seconds=723.6))] == [
        "0s", "7s", "12m 3s"]
    assert format_duration(7.9) == "7.9s"
    berlin = timezone(timedelta(hours=1))
    assert format_moment(datetime(2026, 12, 1, 11, 42, 5, 900_000, tzinfo=berlin)) == (
        "2026-12-01 10:42:05 UTC")
    assert format_moment(datetime(2026, 12, 1, 10, 42, tzinfo=UTC)) == "2026-12-01 10:42:00 UTC"


def test_format_age_and_size() -> None:
    assert [format_age(s) for s in (1, 90, 1200, 3600, 68_400, 129_600, 3_456_000)] == [
        "1 second", "90 seconds", "20 minutes", "60 minutes", "19 hours", "36 hours", "40 days"]
    assert [format_size(n) for n in (512, 2048, 173 * 1024**2, 5 * 1024**3)] == [
        "512 B", "2.0 kB", "173 MB", "5.0 GB"]
