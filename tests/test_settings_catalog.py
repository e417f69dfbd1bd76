"""The shipped settings catalogs and the offline check of a plan's settings (no server)."""

from __future__ import annotations

import json
from pathlib import Path

from harness import Project

from dbops import settings_catalog
from dbops.config.load import validate_file
from dbops.setting_values import SettingSpec, spelled_like

PLAN = """apiVersion: dbops/v1
environment: test
database: {{ host: 127.0.0.1, port: 1, name: app, user: app, sslmode: disable }}
pool: {{ instances: 1, min_size: 1, max_size: 4 }}
settings:
{settings}"""


def test_catalogs_shipped_and_the_nearest_stands_in_for_a_missing_version() -> None:
    assert {15, 16, 18} <= set(settings_catalog.majors())
    pg15 = settings_catalog.load(15)
    assert pg15.server_version.startswith("15.")
    assert pg15.settings["shared_buffers"].needs_restart
    assert pg15.settings["work_mem"].spec == SettingSpec("work_mem", "integer", "kB", "64",
                                                         "2147483647")
    assert "wal_level" in pg15.settings and "logical" in pg15.settings["wal_level"].spec.enumvals
    catalog, note = settings_catalog.for_version(17)
    assert catalog.major == 18 and note == (
        "no settings catalog of PostgreSQL 17 is shipped; checked against PostgreSQL 18's")
    assert settings_catalog.for_version(13)[0].major == 15
    assert settings_catalog.for_version(16) == (settings_catalog.load(16), None)


def test_validate_refuses_unknown_names_and_bad_values_with_no_server(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    plan = tmp_path / "plans" / "test.yaml"
    plan.write_text(PLAN.format(settings="  work_mam: 8MB\n  work_mem: 8XB\n"
                                         "  shared_buffers: 128MB\n  wal_level: minimall\n"
                                         "  auto_explain.log_min_duration: 1s\n"))
    problems = [str(p).removeprefix(f"{plan}:") for p in validate_file(plan, root=tmp_path)]
    assert problems == [
        "6:3: settings.work_mam: unknown setting 'work_mam' (not a setting of PostgreSQL "
        f"{settings_catalog.versions_text()}); did you mean 'work_mem'?",
        "7:13: settings.work_mem: unit 'XB' is not valid here (units: B, kB, MB, GB, TB; "
        "a bare number is in kB)",
        "9:14: settings.wal_level: 'minimall' is not one of minimal, replica, logical"]


def test_values_are_shown_in_the_unit_the_plan_writes() -> None:
    work_mem = SettingSpec("work_mem", "integer", "kB")
    buffers = SettingSpec("shared_buffers", "integer", "8kB")
    timeout = SettingSpec("statement_timeout", "integer", "ms")
    assert spelled_like(work_mem, "16384", "8MB") == "16MB"
    assert spelled_like(work_mem, "12345", "8MB") == "12345kB"  # not a whole number of MB
    assert spelled_like(work_mem, "16384", "4096") == "16384"
    assert spelled_like(buffers, "131072", "512MB") == "1024MB"
    assert spelled_like(timeout, "60000", "30s") == "60s"
    assert spelled_like(work_mem, "-1", "8MB") == "-1"


def test_plan_says_a_restart_is_needed_from_the_servers_catalog(project: Project) -> None:
    project.write_plan("settings:\n  shared_buffers: 256MB\n  work_mem: 8192kB\n")
    result = project.run("plan", "test", "--format", "json")
    assert result.returncode == 0, result.stderr
    changes = {c["address"]: c for c in json.loads(result.stdout)["changes"]}
    with project.database.connect() as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int / 10000,"
                           " current_setting('shared_buffers'), current_setting('work_mem')"
                           ).fetchone()
    assert row is not None
    major, buffers, work_mem = row
    buffers_kb = int(buffers.removesuffix("MB")) * 1024
    work_mem_kb = int(work_mem.removesuffix("MB")) * 1024
    shared = changes["setting.shared_buffers"]
    assert shared["action"] == "~!"
    assert shared["reason"].startswith(
        f"takes effect after a restart (shared_buffers is a postmaster setting in the "
        f"PostgreSQL {settings_catalog.for_version(major)[0].major} catalog")
    assert shared["before"] == f"{buffers_kb // 1024}MB"  # as the plan writes it
    assert changes["setting.work_mem"]["before"] == f"{work_mem_kb}kB"
