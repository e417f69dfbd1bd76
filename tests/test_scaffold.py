"""`dbops init`: the scaffold validates as written and plans against a real database."""

from __future__ import annotations

from pathlib import Path

import yaml
from harness import Project, TestDatabase


def db_environment(database: TestDatabase) -> dict[str, str]:
    return {"DB_HOST": database.host, "DB_PORT": str(database.port), "DB_NAME": database.name,
            "DB_USER": database.user, "DB_PASSWORD": "unused", "DB_SSL_MODE": "disable"}


def test_init_validates_and_plans(database: TestDatabase, tmp_path: Path) -> None:
    project = Project(tmp_path, database)
    result = project.run("init", "app", "--environment", "staging")
    assert result.returncode == 0, result.stderr
    root = tmp_path / "app"
    for name in ("dbops.toml", "plans/base.yaml", "plans/staging.yaml", "inventories/staging.py",
                 "migrations/dbops.sum", ".github/workflows/dbops-pr.yml",
                 ".github/workflows/dbops-drift.yml"):
        assert (root / name).is_file(), name
    assert ".dbops/" in (root / ".gitignore").read_text().splitlines()
    assert 'default_environment = "staging"' in (root / "dbops.toml").read_text()
    assert "password: ${DB_PASSWORD}" in (root / "plans/staging.yaml").read_text()
    drift = yaml.safe_load((root / ".github/workflows/dbops-drift.yml").read_text())
    assert drift["jobs"]["drift"]["strategy"]["matrix"]["environment"] == ["staging"]
    pr = (root / ".github/workflows/dbops-pr.yml").read_text()
    assert "uses: dbops-dev/dbops@v" in pr and "environment: staging" in pr
    assert "${{ secrets.DB_PASSWORD }}" in pr

    app = Project(root, database)
    validated = app.run("validate")
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.strip() == "2 plan(s) valid: plans/base.yaml, plans/staging.yaml"
    migrations = app.run("migrate", "validate", "staging", env=db_environment(database))
    assert migrations.returncode == 0, migrations.stderr
    planned = app.run("plan", "staging", env=db_environment(database))
    assert planned.returncode == 0, planned.stderr
    assert "No changes" in planned.stdout


def test_init_refuses_to_overwrite(database: TestDatabase, tmp_path: Path) -> None:
    project = Project(tmp_path, database)
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "base.yaml").write_text("mine\n")
    (tmp_path / ".gitignore").write_text("*.pyc")
    result = project.run("init")
    assert result.returncode == 1
    assert result.stderr == "error: plans/base.yaml already exists: dbops does not overwrite it\n"
    assert (tmp_path / "plans" / "base.yaml").read_text() == "mine\n"
    assert not (tmp_path / "dbops.toml").exists()
    assert (tmp_path / ".gitignore").read_text() == "*.pyc"


def test_init_appends_to_gitignore(database: TestDatabase, tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.pyc")
    assert Project(tmp_path, database).run("init").returncode == 0
    assert (tmp_path / ".gitignore").read_text().splitlines()[0] == "*.pyc"
    assert (tmp_path / ".gitignore").read_text().endswith("\n.dbops/\n")
    assert (tmp_path / "plans" / "development.yaml").is_file()
