"""The pgbackrest engine against a real PostgreSQL cluster archiving into a real pgBackRest
repository: point-in-time restore, archiving failures in health, retention (dbops.backup.pitr,
dbops.backup.pgbackrest, dbops.health.archiving). pgbackrest must be installed (bin/bootstrap
installs it): these tests fail without it, they do not skip."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from harness import TEST_SETTINGS, Project, TestDatabase, make_project, scratch_area

from dbops.backup.archiving import ArchiveStatus, judge
from dbops.backup.pgbackrest import parse_info
from dbops.backup.pitr import PgBackRestBackups
from dbops.backup.schedule import overdue_since
from dbops.config.load import load_plan
from dbops.errors import BackupError
from dbops.local import Cluster

STANZA = "pitr"


def _plan_text(base: Path, retention_full: int = 2) -> str:
    return (
        "backup:\n"
        "  directory: dumps\n"
        "  engine: pgbackrest\n"
        "  pgbackrest:\n"
        f"    repository: {base}/repo\n"
        f"    config: {base}/pgbackrest.conf\n"
        f"    stanza: {STANZA}\n"
        "    full: '0 1 * * 0'\n"
        f"    retention: {{full: {retention_full}}}\n"
        "    recovery_objective: 5m\n"
    )


@pytest.fixture(scope="module")
def archiving_cluster() -> Iterator[tuple[Cluster, Path]]:
    """A cluster of its own whose archive_command pushes into the stanza's repository."""
    assert shutil.which("pgbackrest"), "pgbackrest is not installed: run bin/bootstrap"
    with scratch_area("dbops-pitr-") as base:
        command = f"pgbackrest --config={base}/pgbackrest.conf --stanza={STANZA} archive-push %p"
        cluster = Cluster(base / "pg", settings={**TEST_SETTINGS, "archive_mode": "on",
                                                 "archive_command": command})
        try:
            cluster.up()
            yield cluster, base
        finally:
            cluster.down()


@pytest.fixture(scope="module")
def pitr_project(archiving_cluster: tuple[Cluster, Path],
                 tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project whose plan `test` declares the pgbackrest engine, applied: the configuration
    written and the stanza created by `dbops apply` (pyinfra on @local)."""
    cluster, base = archiving_cluster
    project = make_project(tmp_path_factory.mktemp("pitr") / "project",
                           TestDatabase(cluster.host, cluster.port, "postgres"))
    project.write_plan(_plan_text(base))
    planned = project.run("plan", "test")
    assert "+ backup.pgbackrest.config" in planned.stdout, planned.stdout
    assert "+ backup.pgbackrest.stanza: pitr" in planned.stdout
    assert "~ setting.archive_timeout: 0s -> 60s (reload)" in planned.stdout
    applied = project.run("apply", "test", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert (base / "repo" / "backup" / STANZA / "backup.info").is_file()
    assert f"[{STANZA}]" in (base / "pgbackrest.conf").read_text()
    converged = project.run("plan", "test", "--diff")
    assert converged.returncode == 0, converged.stdout
    return project


def _sql(project: Project, statement: str) -> list[tuple[object, ...]]:
    with project.database.connect() as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def _archive_current_wal(project: Project) -> None:
    """Switch to a new WAL segment and wait until the one just closed is archived."""
    (segment,) = _sql(project, "SELECT pg_walfile_name(pg_switch_wal())")[0]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        (last,) = _sql(project, "SELECT last_archived_wal FROM pg_stat_archiver")[0]
        if last is not None and str(last) >= str(segment):
            return
        time.sleep(0.1)
    raise AssertionError(f"{segment} was not archived within 30s")


def _ok(result: object) -> None:
    assert getattr(result, "returncode", None) == 0, (getattr(result, "stdout", ""),
                                                      getattr(result, "stderr", ""))


def test_pitr_restore_contains_exactly_the_rows_written_before_the_target(
        pitr_project: Project, archiving_cluster: tuple[Cluster, Path]) -> None:
    _, base = archiving_cluster
    _sql(pitr_project, "CREATE TABLE IF NOT EXISTS events (id int PRIMARY KEY)")
    _ok(pitr_project.run("backup", "create", "test", "--type", "full"))
    # pgBackRest restores a time from a backup that ended before it, to the second.
    time.sleep(1.1)
    too_early = pitr_project.run("backup", "restore", "test", "--to-time",
                                 "2000-01-01 00:00:00+00", "--into", str(base / "too-early"))
    assert too_early.returncode == 1
    assert "no backup ended before 2000-01-01 00:00:00" in too_early.stderr, too_early.stderr
    assert not (base / "too-early").exists()  # refused before anything was made
    for n in range(1, 31):  # one transaction each: the target falls between two commits
        _sql(pitr_project, f"INSERT INTO events VALUES ({n})")
    time.sleep(0.05)
    (target,) = _sql(pitr_project, "SELECT clock_timestamp()")[0]
    time.sleep(0.05)
    for n in range(31, 61):
        _sql(pitr_project, f"INSERT INTO events VALUES ({n})")
    _archive_current_wal(pitr_project)

    into = base / "restored"
    result = pitr_project.run("backup", "restore", "test", "--to-time", str(target),
                              "--into", str(into), env={"DB_PASSWORD": "s3cret-pitr-pw"})
    _ok(result)
    postmaster = int((into / "postmaster.pid").read_text().split()[0])
    environ = Path(f"/proc/{postmaster}/environ").read_bytes()
    assert b"s3cret-pitr-pw" not in environ and b"PGPASSWORD" not in environ
    assert "s3cret-pitr-pw" not in result.stdout + result.stderr
    port = int(re.search(r"runs on 127\.0\.0\.1:(\d+)", result.stdout).group(1))  # type: ignore[union-attr]
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            ids = [row[0] for row in conn.execute("SELECT id FROM events ORDER BY id")]
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        assert ids == list(range(1, 31))
        assert in_recovery == (False,)
        assert "of WAL replayed" in result.stdout
        # The live server is untouched and still has every row.
        assert _sql(pitr_project, "SELECT count(*) FROM events") == [(60,)]
    finally:
        Cluster(into).down()

    again = pitr_project.run("backup", "restore", "test", "--into", str(into))
    assert again.returncode == 1
    assert f"error: {into} exists and is not empty" in again.stderr
    live = pitr_project.run("backup", "restore", "test", "--into", str(base / "pg"))
    assert live.returncode == 1 and "live server's data directory" in live.stderr

    listed = pitr_project.run("backup", "list", "test")
    _ok(listed)
    assert re.search(r"\d{8}-\d{6}F\s+full", listed.stdout)
    (recorded,) = _sql(pitr_project, "SELECT count(*) FROM dbops.backup_catalog"
                                     " WHERE manifest->>'engine' = 'pgbackrest'")[0]
    assert recorded >= 1


def test_failing_archive_command_shows_in_health_within_one_check(
        pitr_project: Project) -> None:
    healthy = pitr_project.run("health", "test")
    assert re.search(r"ok\s+wal_archiving", healthy.stdout), healthy.stdout
    _sql(pitr_project, "ALTER SYSTEM SET archive_command = '/bin/false'")
    _sql(pitr_project, "SELECT pg_reload_conf()")
    try:
        (segment,) = _sql(pitr_project, "SELECT pg_walfile_name(pg_switch_wal())")[0]
        deadline = time.monotonic() + 20
        while _sql(pitr_project, "SELECT failed_count FROM pg_stat_archiver")[0][0] == 0:
            assert time.monotonic() < deadline, "the archiver never tried"
            time.sleep(0.1)
        broken = pitr_project.run("health", "test")
        assert broken.returncode != 0
        assert re.search(r"critical\s+wal_archiving\s+WAL archiving is failing", broken.stdout)
        assert str(segment) in broken.stdout
        drift = pitr_project.run("drift", "test")
        assert drift.returncode == 2
        assert "backup.archiving: WAL archiving is failing" in drift.stdout
    finally:
        _sql(pitr_project, "ALTER SYSTEM RESET archive_command")
        _sql(pitr_project, "SELECT pg_reload_conf()")
    _archive_current_wal(pitr_project)
    assert re.search(r"ok\s+wal_archiving", pitr_project.run("health", "test").stdout)


def test_expire_keeps_the_newest_full_backups_under_retention(
        pitr_project: Project, archiving_cluster: tuple[Cluster, Path]) -> None:
    _, base = archiving_cluster
    for _ in range(2):  # retention full=2: the backup's own expire keeps both
        _ok(pitr_project.run("backup", "create", "test", "--type", "full"))
    _ok(pitr_project.run("backup", "create", "test", "--type", "incr"))
    engine = PgBackRestBackups(load_plan("test", root=pitr_project.root))
    before = engine.info().backups
    fulls = [b.label for b in before if b.type == "full"]
    assert len(fulls) == 2
    newest_full, incremental = fulls[-1], before[-1].label
    assert incremental.startswith(newest_full) and before[-1].type == "incr"
    pitr_project.write_plan(_plan_text(base, retention_full=1))
    try:
        dry = pitr_project.run("backup", "prune", "test", "--dry-run")
        _ok(dry)
        assert [b.label for b in engine.info().backups] == [b.label for b in before]
        pruned = pitr_project.run("backup", "prune", "test")
        _ok(pruned)
        after = [b.label for b in engine.info().backups]
        assert after == [newest_full, incremental]
        assert all(b.label in pruned.stdout for b in before if b.label not in after)
        (rows,) = _sql(pitr_project, "SELECT array_agg(id ORDER BY id) FROM dbops.backup_catalog"
                                     " WHERE manifest->>'engine' = 'pgbackrest'")[0]
        assert rows == after
    finally:
        pitr_project.write_plan(_plan_text(base))


def test_restore_drill_reports_recovery_time_and_data_loss_window(
        pitr_project: Project) -> None:
    _archive_current_wal(pitr_project)
    drill = pitr_project.run("backup", "verify", "test", "--restore-test")
    _ok(drill)
    assert "pgbackrest verify of the repository" in drill.stdout
    assert re.search(r"in \d+\.\d+s \(recovery time\)", drill.stdout)
    assert "data-loss window proven:" in drill.stdout
    assert "stopped and removed" in drill.stdout


def test_plan_shows_the_restart_archive_mode_needs_and_that_archiving_is_off(
        project: Project) -> None:
    project.write_plan("backup:\n  directory: dumps\n  engine: pgbackrest\n"
                       "  pgbackrest: {repository: repo, config: pgbackrest.conf}\n")
    planned = project.run("plan", "test")
    assert planned.returncode == 0, planned.stderr
    assert "~! setting.archive_mode: off -> on (restart)" in planned.stdout
    assert (f"~ setting.archive_command: (disabled) -> pgbackrest "
            f"--config={project.root}/pgbackrest.conf --stanza=test archive-push %p"
            in planned.stdout)
    assert "+ backup.pgbackrest.stanza: test" in planned.stdout
    assert "WAL archiving now: WAL archiving is off" in planned.stdout


def test_engine_pgbackrest_without_its_block_names_the_line(project: Project) -> None:
    project.write_plan("backup:\n  directory: dumps\n  engine: pgbackrest\n")
    result = project.run("validate", "test")
    assert result.returncode == 1
    assert re.search(r"plans/test\.yaml:\d+:\d+: backup\.engine: engine pgbackrest needs a "
                     r"'pgbackrest' block", result.stdout + result.stderr)


def _status(**given: object) -> ArchiveStatus:
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    values: dict[str, object] = dict(
        archive_mode="on", archive_command="pgbackrest ... archive-push %p",
        archive_timeout="60s", archived_count=10, last_archived_wal="00000001000000000000000A",
        last_archived_time=now - timedelta(seconds=30), failed_count=0, last_failed_wal=None,
        last_failed_time=None, read_at=now)
    values.update(given)
    return ArchiveStatus(**values)  # type: ignore[arg-type]


def test_archiving_judgement_against_the_recovery_objective() -> None:
    objective = timedelta(minutes=5)
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert judge(_status(), objective).verdict == "ok"
    assert judge(_status(archive_mode="off"), objective).verdict == "critical"
    failing = _status(failed_count=2, last_failed_wal="00000001000000000000000B",
                      last_failed_time=now - timedelta(seconds=5))
    assert judge(failing, objective).verdict == "critical"
    recovered = _status(failed_count=2, last_failed_time=now - timedelta(minutes=1))
    assert judge(recovered, objective).verdict == "ok"
    assert judge(recovered, objective, previous_failed=1).verdict == "critical"
    stale = judge(_status(last_archived_time=now - timedelta(minutes=12)), objective)
    assert stale.verdict == "warning"
    assert "12m old, beyond recovery_objective 5m" in stale.message


def test_pgbackrest_info_is_read_oldest_first_with_the_dbops_reason() -> None:
    text = json.dumps([{"name": "other", "status": {"code": 0, "message": "ok"}},
                       {"name": STANZA, "status": {"code": 0, "message": "ok"},
                        "archive": [{"min": "000000010000000000000002",
                                     "max": "000000010000000000000009"}],
                        "backup": [
        {"label": "20261130-220700F_20261130-221000I", "type": "incr",
         "timestamp": {"start": 1796076600, "stop": 1796076602},
         "info": {"size": 2000, "repository": {"size": 300}}, "prior": "20261130-220700F",
         "annotation": {"dbops-reason": "before-migrate"}, "error": False},
        {"label": "20261130-220700F", "type": "full",
         "timestamp": {"start": 1796076420, "stop": 1796076423},
         "info": {"size": 22994194, "repository": {"size": 4523681}}, "error": False}]}])
    info = parse_info(text, STANZA)
    assert [b.label for b in info.backups] == ["20261130-220700F",
                                               "20261130-220700F_20261130-221000I"]
    assert info.backups[1].reason == "before-migrate" and info.backups[0].reason == ""
    assert info.newest("full") == info.backups[0]
    assert (info.archive_min, info.archive_max) == ("000000010000000000000002",
                                                    "000000010000000000000009")
    with pytest.raises(BackupError, match="does not know stanza 'nope'"):
        parse_info(text, "nope")
    with pytest.raises(BackupError, match="unexpected output"):
        parse_info("[{\"name\": \"pitr\"}]", STANZA)


def test_full_backup_overdue_under_its_schedule() -> None:
    now = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)  # a Wednesday
    weekly = "0 1 * * 0"
    assert overdue_since(weekly, now - timedelta(days=3), now) is None
    late = overdue_since(weekly, now - timedelta(days=10), now)
    assert late is not None and "wants one every 7 days" in late
    assert overdue_since(weekly, None, now) == (
        "there is no full backup; schedule '0 1 * * 0' wants one every 7 days")


def test_drift_reports_a_full_backup_older_than_its_schedule(pitr_project: Project) -> None:
    _ok(pitr_project.run("backup", "create", "test", "--type", "full"))
    fresh = pitr_project.run("drift", "test")
    assert "backup.pgbackrest.full" not in fresh.stdout, fresh.stdout
    # The catalog says every full backup started long ago: the weekly schedule is missed.
    saved = _sql(pitr_project, "SELECT id, manifest->>'started_at' FROM dbops.backup_catalog"
                               " WHERE manifest->>'type' = 'full'")
    try:
        _sql(pitr_project, "UPDATE dbops.backup_catalog SET manifest = jsonb_set(manifest,"
                           " '{started_at}', to_jsonb('2020-01-05T00:00:00+00:00'::text))"
                           " WHERE manifest->>'type' = 'full'")
        late = pitr_project.run("drift", "test")
        assert late.returncode == 2, late.stdout + late.stderr
        assert "backup.pgbackrest.full" in late.stdout, late.stdout
        health = pitr_project.run("health", "test")
        assert re.search(r"warning\s+full_backup_age", health.stdout), health.stdout
    finally:
        for backup_id, started in saved:
            _sql(pitr_project, "UPDATE dbops.backup_catalog SET manifest = jsonb_set(manifest,"
                               f" '{{started_at}}', to_jsonb('{started}'::text))"
                               f" WHERE id = '{backup_id}'")
