"""The Python API applications import: every exported name resolves, the seed's names still work
as aliases of the Python ones, the error tree and the exit codes the CLI chooses."""

from __future__ import annotations

import importlib

import pytest
from harness import Project
from test_backup_support import manager, migrate, taskmaster_project

from dbops import errors
from dbops.changes import ChangeSet
from dbops.cli import exits
from dbops.config.load import load_plan
from dbops.drift import DriftItem, DriftReport
from dbops.health.monitor import HealthMonitor
from dbops.migrate.engine import MigrationEngine
from dbops.render import drift_report


@pytest.mark.parametrize("package", ["dbops", "dbops.health", "dbops.backup", "dbops.pool"])
def test_every_exported_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    missing = []
    for name in module.__all__:
        try:
            getattr(module, name)
        except (AttributeError, ImportError) as exc:
            missing.append(f"{name}: {exc}")
    assert missing == []


def test_the_seeds_names_are_aliases_of_the_python_ones(project: Project) -> None:
    taskmaster_project(project, target="20250603090000")
    migrate(project)
    engine = MigrationEngine.from_plan("test", root=project.root)
    assert engine.get_migration_status() == engine.status()
    assert [s.state for s in engine.status()].count("applied") >= 1

    backups = manager(project)
    made = backups.create(reason="manual")
    assert [m.id for m in backups.list()] == [m.id for m in backups.list_backups()] == [made.id]

    plan = load_plan("test", root=project.root, environ={})
    with HealthMonitor(plan, alerts=False, recover=False, operations=False) as monitor:
        first = monitor.force_health_check()
        assert monitor.get_current_health() is first is monitor.current()
        second = monitor.check_now()
        assert monitor.get_health_history() == monitor.history() == [first, second]
        assert monitor.get_health_report().cycles == monitor.summary().cycles == 2


def test_connection_error_is_the_old_name_of_connect_failed() -> None:
    assert errors.ConnectionError is errors.ConnectFailed
    assert not issubclass(errors.ConnectFailed, ConnectionError)  # the builtin stays the builtin


@pytest.mark.parametrize("text, reason", [
    ("not json", "Expecting value"),
    ('{"format_version": 1}', "unsupported plan file format_version 1"),
    ('{"format_version": 2}', "'changes'"),
    ("[]", "has no attribute 'get'"),
])
def test_a_file_that_is_no_changeset_is_an_invalid_changeset(text: str, reason: str) -> None:
    with pytest.raises(errors.InvalidChangeSet, match=r"^not a dbops plan file: ") as caught:
        ChangeSet.from_json(text)
    assert reason in str(caught.value)


def drift_of(*items: DriftItem) -> DriftReport:
    return DriftReport("test", "appdb", None, items)


def test_drift_exit_codes_are_chosen_by_the_cli_from_the_verdict() -> None:
    changed = DriftItem("out-of-band", "setting.work_mem", "4MB", "8MB", "4MB")
    pending = DriftItem("pending", "setting.work_mem", "4MB", "4MB", "8MB")
    ignored = DriftItem("out-of-band", "setting.work_mem", "4MB", "8MB", "4MB", ignored="known")
    cases = [((), "in sync", 0), ((pending,), "pending only", 3),
             ((pending, changed), "out-of-band", 2), ((ignored,), "in sync", 0)]
    for items, verdict, code in cases:
        report = drift_of(*items)
        assert (report.verdict, exits.drift(report)) == (verdict, code)
        assert f'"exit_code": {code}' in drift_report.json(report, exits.drift(report))


def test_health_exit_codes_are_chosen_by_the_cli() -> None:
    assert exits.health(None) == 1  # could not check: health checks are off
    assert exits.HEALTH == {"ok": 0, "warning": 2, "critical": 3}
