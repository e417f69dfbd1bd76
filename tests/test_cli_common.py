"""cli/common.py: exit codes a CI job can trust (usage errors exit 1, never 2) and JSON errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from harness import Project, child_env

from dbops.cli import main


@pytest.fixture(autouse=True)
def _empty_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plans").mkdir()
    monkeypatch.chdir(tmp_path)


def dbops(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


USAGE_ERRORS = {
    "validate/plan/apply/drift": [
        ["validate", "--bogus"],
        ["plan"],
        ["plan", "staging", "--diff", "--format", "md"],
        ["apply", "staging", "--lock-wait"],
        ["drift", "staging", "--format", "yaml"],
        ["nosuchcommand"],
        [],
    ],
    "migrate": [["migrate", "up"], ["migrate", "status", "x", "--format", "xml"], ["migrate", "nope"]],
    "backup": [["backup", "list"], ["backup", "create", "x", "--bogus"], ["backup", "nope"]],
    "health": [["health"], ["health", "x", "--format", "yaml"]],
    "local": [["local", "nope"], ["local", "up", "--bogus"]],
}


@pytest.mark.parametrize("family", sorted(USAGE_ERRORS))
def test_a_usage_error_exits_1_with_clicks_message(family: str) -> None:
    for args in USAGE_ERRORS[family]:
        result = dbops(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "Error:" in result.stderr or "Usage:" in result.stderr, args
        assert result.stdout == "", args
        assert isinstance(result.exception, SystemExit), args


def test_help_and_version_exit_0() -> None:
    for args in (["--help"], ["plan", "--help"], ["migrate", "up", "-h"], ["--version"]):
        result = dbops(*args)
        assert result.exit_code == 0, args
        assert result.stdout


def test_the_installed_entry_points_use_the_exit_codes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dbops", "drift", "staging", "--format", "yaml"],
        capture_output=True, text=True, check=False, env=child_env(drop=()),
    )
    assert result.returncode == 1
    assert "Error: Invalid value for '--format': 'yaml' is not one of" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "staging", "--format", "json"],
        ["drift", "staging", "--format", "json"],
        ["health", "staging", "--format", "json"],
        ["migrate", "status", "staging", "--format", "json"],
        ["backup", "list", "staging", "--format", "json"],
    ],
)
def test_with_format_json_an_error_is_a_json_document_on_stdout(args: list[str]) -> None:
    result = dbops(*args)
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "PlanError"
    assert "unknown environment 'staging'" in error["message"]
    assert "unknown environment 'staging'" in result.stderr


def test_with_format_json_a_usage_error_is_json_too() -> None:
    result = dbops("drift", "staging", "--format", "json", "--bogus")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "error": {"message": "No such option '--bogus'.", "type": "NoSuchOption"}
    }
    result = dbops("plan", "--format=json")
    assert (result.exit_code, json.loads(result.stdout)["error"]["type"]) == (1, "UsageError")


def test_every_command_is_in_its_family_and_help_lists_them_all() -> None:
    from dbops.cli import FAMILIES

    listed = main.list_commands(click.Context(main))
    assert set(listed) == set(FAMILIES)
    assert set(main.commands) == set(FAMILIES)


def test_a_command_imports_only_its_own_family() -> None:
    """`dbops migrate ...` does not load the planner's, backups' or health's command modules,
    nor rich (a terminal's live view) or pyinfra: start-up time counts on every CI run."""
    probe = (
        "import sys\n"
        "from dbops.cli import main\n"
        "try:\n"
        "    main(['migrate', 'status', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    loaded = set(done.stdout.split())
    assert "dbops.cli.migrations" in loaded
    assert not loaded & {"dbops.cli.plans", "dbops.cli.backups", "dbops.cli.audit", "rich",
                         "pyinfra", "dbops.planner"}


def modules_loaded(project: Project, *args: str) -> set[str]:
    """The modules a dbops command run in the project loads; the command must exit 0."""
    probe = (
        "import sys\n"
        "from dbops.cli import main\n"
        "try:\n"
        f"    main({list(args)!r})\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code, file=sys.stderr)\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, cwd=project.root, env=child_env(drop=("DB_",)))
    assert "exit 0" in done.stderr, done.stderr
    return set(done.stdout.split())


def test_plan_with_nothing_pending_loads_neither_pglast_nor_pyinfra(project: Project) -> None:
    """`dbops plan` is the pull-request check: with no migration pending it parses no SQL (no
    pglast, ~0.3 s to load) and executes nothing (no pyinfra). Twice before, a helper of the plan
    (the health checks, the privileges' keyword list) loaded pglast again; this says when."""
    assert "backup:" not in (project.root / "plans" / "test.yaml").read_text()
    loaded = modules_loaded(project, "plan", "test")
    assert "dbops.planner" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("pglast", "pyinfra")}
    # A plan without a backup policy reads no backups: none of their machinery is loaded.
    assert not {m for m in loaded if m.startswith(("dbops.backup", "dbops.health.operations"))}


def test_migrate_up_without_a_backup_policy_loads_no_backup_machinery(project: Project) -> None:
    """Every CI job runs `dbops migrate up`: a plan that takes no before-migrate backup loads none
    of pg_dump's machinery (about 15 ms of imports) and no pyinfra."""
    assert "backup:" not in (project.root / "plans" / "test.yaml").read_text()
    (project.root / "migrations" / "20260101000000_gadgets.sql").write_text(
        "-- migrate:up\nCREATE TABLE gadgets (id bigint PRIMARY KEY);\n"
        "CREATE INDEX gadgets_id ON gadgets (id);\n")
    assert project.run("migrate", "hash").returncode == 0
    loaded = modules_loaded(project, "migrate", "up", "test", "--yes")
    with project.database.connect() as conn:
        assert conn.execute("SELECT to_regclass('gadgets') IS NOT NULL").fetchone() == (True,)
    assert not {m for m in loaded if m.startswith(("dbops.backup", "pyinfra"))}
