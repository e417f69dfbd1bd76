"""The project root (dbops/config/project.py): found like git finds its repository, overridden by
-C and DBOPS_PROJECT_DIR, with defaults from dbops.toml; every command gives the same results from
any subdirectory."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Project

from dbops.config.project import Project as DbopsProject
from dbops.config.project import find_root
from dbops.errors import DbopsError, PlanError


def add_migration(project: Project) -> None:
    (project.root / "migrations" / "20250101000001_items.sql").write_text(
        "-- migrate:up\nCREATE TABLE items (id int PRIMARY KEY);\n-- migrate:down\nDROP TABLE items;\n"
    )
    assert project.run("migrate", "hash").returncode == 0


def test_root_is_the_nearest_dbops_toml_then_plans(tmp_path: Path) -> None:
    deep = tmp_path / "outer" / "inner" / "src" / "deeper"
    deep.mkdir(parents=True)
    (tmp_path / "outer" / "plans").mkdir()
    assert find_root(deep, environ={}) == tmp_path / "outer"
    (tmp_path / "outer" / "inner" / "plans").mkdir()
    assert find_root(deep, environ={}) == tmp_path / "outer" / "inner"
    (tmp_path / "outer" / "dbops.toml").write_text("")
    assert find_root(deep, environ={}) == tmp_path / "outer"  # dbops.toml wins over plans/
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    assert find_root(lonely, environ={}) == lonely


def test_explicit_root_wins(tmp_path: Path) -> None:
    (tmp_path / "a" / "plans").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    environ = {"DBOPS_PROJECT_DIR": str(tmp_path / "b")}
    assert find_root(tmp_path / "a", environ=environ) == tmp_path / "b"
    assert find_root(tmp_path / "a", given=tmp_path / "a", environ=environ) == tmp_path / "a"
    with pytest.raises(DbopsError, match=r"project directory not found: .*missing"):
        find_root(tmp_path, environ={"DBOPS_PROJECT_DIR": str(tmp_path / "missing")})


def test_dbops_toml_defaults(tmp_path: Path) -> None:
    assert DbopsProject.at(tmp_path) == DbopsProject(tmp_path, tmp_path / "plans", None)
    (tmp_path / "dbops.toml").write_text('plans = "deploy/plans"\ndefault_environment = "staging"\n')
    assert DbopsProject.at(tmp_path) == DbopsProject(tmp_path, tmp_path / "deploy/plans", "staging")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('plan_dir = "x"\n', "plan_dir: unknown key (known: default_environment, plans)"),
        ("plans = 3\n", "plans: must be a non-empty string"),
        ("plans = \n", "not valid TOML"),
        ("# " + "x" * 70_000 + "\n", "larger than 64 KiB"),
    ],
)
def test_invalid_dbops_toml(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "dbops.toml").write_text(text)
    with pytest.raises(PlanError) as caught:
        DbopsProject.at(tmp_path)
    assert "dbops.toml" in str(caught.value) and message in str(caught.value)


def test_main_job_from_a_subdirectory_matches_the_root(project: Project) -> None:
    add_migration(project)
    sub = project.root / "migrations" / "nested"
    sub.mkdir()
    from_root, from_sub = project.run("plan", "test"), project.run("plan", "test", cwd=sub)
    assert from_root.returncode == from_sub.returncode == 0, from_sub.stderr
    assert "20250101000001" in from_sub.stdout
    assert from_sub.stdout == from_root.stdout
    typed = project.run("plan", "../../plans/test.yaml", cwd=sub)
    assert typed.returncode == 0 and typed.stdout == from_root.stdout, typed.stderr
    assert project.run("validate", cwd=sub).returncode == 0
    assert project.run("validate", "test", cwd=sub).returncode == 0
    applied = project.run("apply", "test", "--yes", cwd=sub)
    assert applied.returncode == 0, applied.stderr
    assert (project.root / ".dbops" / "logs").is_dir()
    assert not (sub / ".dbops").exists()
    for cwd in (sub, project.root):
        again = project.run("plan", "test", "--diff", cwd=cwd)
        assert again.returncode == 0, again.stdout + again.stderr


def test_project_dir_option_and_variable(project: Project, tmp_path: Path) -> None:
    add_migration(project)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    expected = project.run("plan", "test").stdout
    lost = project.run("plan", "test", cwd=elsewhere)
    assert lost.returncode == 1 and "unknown environment 'test'" in lost.stderr
    by_option = project.run("-C", str(project.root), "plan", "test", cwd=elsewhere)
    assert by_option.returncode == 0 and by_option.stdout == expected, by_option.stderr
    by_variable = project.run(
        "plan", "test", cwd=elsewhere, env={"DBOPS_PROJECT_DIR": str(project.root)}
    )
    assert by_variable.returncode == 0 and by_variable.stdout == expected, by_variable.stderr
    missing = project.run("-C", str(tmp_path / "missing"), "plan", "test", cwd=elsewhere)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: project directory not found: {tmp_path / 'missing'} (from -C)"


def test_dbops_toml_sets_plans_directory_and_default_environment(project: Project) -> None:
    (project.root / "deploy").mkdir()
    (project.root / "plans").rename(project.root / "deploy" / "plans")
    (project.root / "dbops.toml").write_text(
        'plans = "deploy/plans"\ndefault_environment = "test"\n'
    )
    add_migration(project)
    sub = project.root / "deploy"
    planned = project.run("plan", cwd=sub)
    assert planned.returncode == 0 and "20250101000001" in planned.stdout, planned.stderr
    assert project.run("plan", "test", cwd=sub).stdout == planned.stdout
    valid = project.run("validate", cwd=sub)
    assert valid.returncode == 0 and "1 plan(s) valid" in valid.stdout, valid.stderr
    status = project.run("migrate", "status", cwd=sub)
    assert status.returncode == 0 and "pending" in status.stdout, status.stderr


def test_invalid_dbops_toml_is_one_line_naming_file_and_key(project: Project) -> None:
    (project.root / "dbops.toml").write_text('default_enviroment = "test"\n')
    sub = project.root / "migrations"
    result = project.run("plan", "test", cwd=sub)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{project.root / 'dbops.toml'}: default_enviroment: unknown key "
        "(known: default_environment, plans)"
    ]
    assert project.run("plan", "--help", cwd=sub).returncode == 0


def test_local_status_from_a_subdirectory_finds_the_same_cluster(project: Project) -> None:
    sub = project.root / "migrations"
    from_root, from_sub = project.run("local", "status"), project.run("local", "status", cwd=sub)
    assert from_root.returncode == from_sub.returncode == 0, from_sub.stderr
    assert from_sub.stdout == from_root.stdout
    assert str(project.root / ".dbops") in from_sub.stdout
