"""The catalog's pure rules with plain values: retention and its floor, the earliest restorable
point, cron schedules and overdue backups, finding ids, restore tests due, the manifest format."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dbops.backup import (
    AmbiguousBackup,
    BackupError,
    Manifest,
    UnknownBackup,
    Verification,
    catalog,
    overdue,
    read_manifests,
    retention_effect,
    schedule,
)
from dbops.backup import manifest as manifests
from dbops.config.model import BackupPolicy, Retention
from dbops.render.backup_results import list_table
from dbops.units import format_age, format_size

NOW = datetime(2025, 6, 12, 10, 0, tzinfo=UTC)  # a Thursday


def policy(*, keep_last: int = 3, max_age: timedelta = timedelta(days=7),
           cron: str | None = None, restore_test: str = "never") -> BackupPolicy:
    return BackupPolicy(directory=Path("/backups"), before_migrate=True, format="custom", jobs=1,
                        globals=False, schedule=cron, retention=Retention(keep_last, max_age),
                        verify_checksums=True, restore_test=restore_test)


def backup(backup_id: str, started: datetime, *, ok: bool | None = None, reason: str = "manual",
           restore_ok: bool | None = None, duration: float = 60.0) -> Manifest:
    return Manifest(
        id=backup_id, environment="production", database="taskmaster", server="db:5432",
        server_version="15.18", pg_dump_version="pg_dump 15.18", dbops_version="0.1.0",
        migration_version="20250617080000", reason=reason, started_at=started,
        finished_at=started + timedelta(seconds=duration), duration_s=duration, size=2048,
        format="custom", jobs=1, globals=False, encoding="UTF8", lc_collate="C.UTF-8",
        lc_ctype="C.UTF-8", files=(manifests.FileEntry("dump.pgdump", 2048, "ab" * 32),),
        row_counts={"public.tasks": 10},
        archive_check=None if ok is None else Verification(started, ok),
        restore_test=None if restore_ok is None else Verification(started, restore_ok, (), 3.0, 1))


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def test_retention_keeps_the_newest_and_deletes_the_old_beyond_them() -> None:
    backups = [backup(f"b{n}", days_ago(n), ok=True) for n in (1, 2, 3, 10, 20, 40)]
    effect = retention_effect(policy(keep_last=3, max_age=timedelta(days=15)), backups, NOW)
    assert effect.delete == ("b20", "b40")
    assert effect.keep == ("b1", "b2", "b3", "b10")
    assert effect.floor == "b1"
    assert effect.earliest_before == days_ago(40) and effect.earliest_after == days_ago(10)
    assert "b40: 40 days old, beyond max_age 15d and keep_last 3" in "\n".join(effect.lines())
    assert "earliest restorable point moves from 2025-05-03 10:00 UTC to 2025-06-02 10:00 UTC" \
        in "\n".join(effect.lines())


def test_the_floor_keeps_the_newest_verified_backup() -> None:
    backups = [backup("new-unverified", days_ago(30)), backup("failed", days_ago(40), ok=False),
               backup("verified", days_ago(50), ok=True), backup("old", days_ago(60), ok=True)]
    effect = catalog.select(Retention(keep_last=1, max_age=timedelta(days=1)), backups, NOW)
    assert effect.floor == "verified"
    assert effect.keep == ("new-unverified", "verified")
    assert effect.delete == ("failed", "old")


@pytest.mark.parametrize("verified", [True, False])
def test_a_policy_that_would_delete_everything_keeps_the_floor(verified: bool) -> None:
    backups = [backup(f"b{n}", days_ago(n), ok=verified or None) for n in (5, 6, 7)]
    effect = catalog.select(Retention(keep_last=0, max_age=timedelta(0)), backups, NOW)
    assert effect.keep == ("b5",) and effect.floor == "b5"
    assert effect.delete == ("b6", "b7")
    failed = [backup(f"f{n}", days_ago(n), ok=False) for n in (5, 6)]
    only_failed = catalog.select(Retention(0, timedelta(0)), failed, NOW)
    assert only_failed.floor is None and only_failed.keep == ()  # a FAILED backup is no floor
    assert catalog.select(Retention(0, timedelta(0)), [], NOW).keep == ()


def test_failed_backups_take_no_keep_last_place_and_are_never_the_floor() -> None:
    backups = [backup("failed-1", days_ago(1), ok=False), backup("failed-2", days_ago(2), ok=False),
               backup("good-20", days_ago(20)), backup("good-30", days_ago(30)),
               backup("good-40", days_ago(40))]
    effect = catalog.select(Retention(keep_last=2, max_age=timedelta(days=1)), backups, NOW)
    assert effect.keep == ("failed-1", "good-20", "good-30") and effect.floor == "good-20"
    assert effect.delete == ("failed-2", "good-40")
    assert effect.why["failed-2"] == "2 days old, beyond max_age 1d (its verification FAILED)"


def test_failed_backups_do_not_count_as_restorable() -> None:
    backups = [backup("good", days_ago(1), ok=True), backup("bad", days_ago(9), ok=False)]
    effect = retention_effect(policy(keep_last=5), backups, NOW)
    assert effect.earliest_before == effect.earliest_after == days_ago(1)
    assert effect.lines() == ["retention deletes 1 backup(s), keeps 1:",
                              "  - bad: 9 days old, beyond max_age 7d (its verification FAILED)"]


@pytest.mark.parametrize(("cron", "interval"), [
    ("0 3 * * *", timedelta(days=1)),
    ("@daily", timedelta(days=1)),
    ("@hourly", timedelta(hours=1)),
    ("*/15 * * * *", timedelta(minutes=15)),
    ("0 */6 * * *", timedelta(hours=6)),
    ("30 2 * * 0", timedelta(days=7)),
    ("@weekly", timedelta(days=7)),
    ("0 0 1 * *", timedelta(days=31)),  # June 1st back to May 1st
    ("0 9,17 * * *", timedelta(hours=16)),  # at 10:00 the last firing was 09:00, after 17:00
    ("0 3 * * MON-FRI", timedelta(days=1)),  # Thursday's firing came a day after Wednesday's
    ("0 3 * JAN,JUN *", timedelta(days=1)),
])
def test_cron_intervals(cron: str, interval: timedelta) -> None:
    parsed = schedule.parse(cron)
    last = parsed.previous(NOW)
    assert last is not None and last <= NOW
    assert parsed.interval_at(last) == interval


def test_cron_weekends_and_either_day_rule() -> None:
    weekdays = schedule.parse("0 3 * * 1-5")
    monday = datetime(2025, 6, 16, 10, 0, tzinfo=UTC)
    last = weekdays.previous(monday)
    assert last == datetime(2025, 6, 16, 3, 0, tzinfo=UTC)
    assert weekdays.interval_at(last) == timedelta(days=3)  # Friday -> Monday
    either = schedule.parse("0 0 13 * 5")  # the 13th, or any Friday
    assert either.previous(NOW) == datetime(2025, 6, 6, 0, 0, tzinfo=UTC)
    assert either.previous(datetime(2025, 6, 13, 0, 0, tzinfo=UTC)) == datetime(
        2025, 6, 13, 0, 0, tzinfo=UTC)
    sunday = datetime(2025, 6, 15, 0, 0, tzinfo=UTC)
    assert schedule.parse("0 0 * * 7").previous(NOW) == sunday - timedelta(days=7)  # 7 is Sunday


def test_cron_extensions_cronsim_reads() -> None:
    last_day = schedule.parse("0 3 L * *")  # the last day of the month
    assert last_day.previous(NOW) == datetime(2025, 5, 31, 3, 0, tzinfo=UTC)
    second_friday = schedule.parse("0 3 * * 5#2")
    assert second_friday.previous(NOW) == datetime(2025, 5, 9, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize("cron", ["@reboot", "0 3 * *", "61 * * * *", "99 99 * * *",
                                  "0 3 * * FOO", "*/0 * * * *", "0 0 30 2 *", "0 3 * * * 2025"])
def test_unsupported_cron_is_a_clear_error(cron: str) -> None:
    with pytest.raises(BackupError, match=r"backup\.schedule .*not a cron schedule"):
        schedule.parse(cron)


def test_overdue_daily_schedule() -> None:
    daily = policy(cron="0 3 * * *")
    assert overdue(daily, [backup("a", days_ago(2) - timedelta(hours=1))], NOW) == (
        "the newest backup is 2 days 1 hour old; schedule '0 3 * * *' wants one every 1 day"
        " (the run due 2025-06-12 03:00 UTC is missing)")
    early = datetime(2025, 6, 12, 2, 50, tzinfo=UTC)  # started within the grace before the run
    assert overdue(daily, [backup("a", early)], NOW) is None
    evening = datetime(2025, 6, 11, 15, 0, tzinfo=UTC)
    assert "19 hours old" in (overdue(daily, [backup("a", evening)], NOW) or "")
    today = datetime(2025, 6, 12, 3, 0, 5, tzinfo=UTC)
    assert overdue(daily, [backup("a", today)], NOW) is None
    assert overdue(daily, [], NOW) == "there is no backup; schedule '0 3 * * *' wants one every 1 day"
    assert overdue(policy(), [], NOW) is None  # no schedule: never overdue
    assert overdue(None, [], NOW) is None


def test_overdue_allows_the_scheduled_run_to_finish() -> None:
    daily = policy(cron="0 3 * * *")
    yesterday = datetime(2025, 6, 11, 3, 0, 2, tzinfo=UTC)
    running = datetime(2025, 6, 12, 3, 40, tzinfo=UTC)  # today's run may still be going
    assert overdue(daily, [backup("y", yesterday, duration=30 * 60)], running) is None
    late = datetime(2025, 6, 12, 4, 30, tzinfo=UTC)  # grace: 2 x 30 min after the 03:00 run
    assert overdue(daily, [backup("y", yesterday, duration=30 * 60)], late) is not None
    failed = [backup("y", datetime(2025, 6, 12, 3, 0, tzinfo=UTC), ok=False),
              backup("old", days_ago(3))]
    assert "3 days old" in (overdue(daily, failed, NOW) or "")


def test_overdue_weekday_schedule_over_the_weekend() -> None:
    weekdays = policy(cron="0 3 * * 1-5")
    friday = datetime(2025, 6, 13, 3, 0, tzinfo=UTC)
    sunday = datetime(2025, 6, 15, 18, 0, tzinfo=UTC)
    monday = datetime(2025, 6, 16, 10, 0, tzinfo=UTC)
    assert overdue(weekdays, [backup("f", friday)], sunday) is None
    assert overdue(weekdays, [backup("f", friday)], monday) == (
        "the newest backup is 3 days 7 hours old; schedule '0 3 * * 1-5' wants one every 1 day"
        " (the run due 2025-06-16 03:00 UTC is missing)")
    monday_run = datetime(2025, 6, 16, 3, 1, tzinfo=UTC)
    assert overdue(weekdays, [backup("f", friday), backup("m", monday_run)], monday) is None
    thursday = datetime(2025, 6, 12, 3, 0, tzinfo=UTC)
    assert overdue(weekdays, [backup("t", thursday)], friday + timedelta(hours=7)) is not None


def test_resolve_exact_prefix_and_nearest() -> None:
    backups = [backup(i, days_ago(n)) for n, i in enumerate(
        ["20250610T030000Z-1a2b", "20250611T030000Z-3c4d", "20250612T030000Z-5e6f"])]
    assert catalog.resolve("20250611T030000Z-3c4d", backups).id == "20250611T030000Z-3c4d"
    assert catalog.resolve("20250612", backups).id == "20250612T030000Z-5e6f"
    with pytest.raises(UnknownBackup) as caught:
        catalog.resolve("20250611T030000Z-3c4e", backups)
    assert caught.value.nearest[0] == "20250611T030000Z-3c4d"
    with pytest.raises(AmbiguousBackup) as ambiguous:
        catalog.resolve("202506", backups)
    assert str(ambiguous.value) == (
        "backup id '202506' is ambiguous: 3 backups start with it (20250610T030000Z-1a2b, "
        "20250611T030000Z-3c4d, 20250612T030000Z-5e6f); give more of the id")


def test_latest_and_restore_test_due() -> None:
    backups = [backup("m", days_ago(1)), backup("bm", days_ago(2), reason="before-migrate"),
               backup("bm-bad", days_ago(0.5), reason="before-migrate", ok=False)]
    assert catalog.latest(backups) == backups[0]
    assert catalog.latest(backups, "before-migrate") == backups[1]
    assert catalog.latest([], "before-migrate") is None
    tested = [backup("t", days_ago(3), restore_ok=True)]
    assert not catalog.restore_test_due(policy(restore_test="never"), [], NOW)
    assert catalog.restore_test_due(policy(restore_test="each"), tested, NOW)
    assert not catalog.restore_test_due(policy(restore_test="weekly"), tested, NOW)
    assert catalog.restore_test_due(policy(restore_test="daily"), tested, NOW)
    failed = [backup("t", days_ago(1), restore_ok=False)]
    assert catalog.restore_test_due(policy(restore_test="weekly"), failed, NOW)


def test_manifest_round_trips_and_the_catalog_skips_what_is_not_complete(tmp_path: Path) -> None:
    original = backup("20250612T030000Z-5e6f", days_ago(1), ok=True, restore_ok=True)
    folder = tmp_path / original.id
    folder.mkdir()
    manifests.write(original, folder)
    data = json.loads((folder / "manifest.json").read_text())
    assert data["format_version"] == 1 and data["started_at"].endswith("Z")
    assert (folder / "manifest.json").stat().st_mode & 0o777 == 0o600
    for name, text in ((".tmp-x", json.dumps(data)), ("broken", "{"),
                       ("partial", json.dumps({**data, "status": "writing"}))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(text)
    (tmp_path / "no-manifest").mkdir()
    found = read_manifests(tmp_path)
    assert found == [original] and found[0].folder == folder
    assert read_manifests(tmp_path / "missing") == []


def test_listing_helpers() -> None:
    assert [format_age(timedelta(seconds=s)) for s in (1, 5, 300, 7200, 200000)] == [
        "1 second", "5 seconds", "5 minutes", "2 hours", "2 days"]
    assert [format_size(n) for n in (512, 2048, 5 * 1024**3)] == ["512 B", "2.0 kB", "5.0 GB"]
    assert list_table([], NOW) == ["no backups"]
    rows = list_table([backup("x", days_ago(2), ok=True)], NOW)
    assert rows[1].split() == ["x", "2", "days", "2.0", "kB", "manual", "20250617080000", "checksums"]
