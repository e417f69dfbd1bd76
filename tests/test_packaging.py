"""dbops as a user installs it: the built wheel in a fresh virtual environment, run from elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness import TestDatabase, make_project

from dbops.config.schema import packaged_schema

REPO = Path(__file__).resolve().parents[1]


def test_packaged_schemas_are_the_published_ones() -> None:
    for published in sorted((REPO / "schemas").glob("*.json")):
        assert packaged_schema(published.name) == published.read_bytes(), published.name
    assert sorted(p.name for p in (REPO / "dbops" / "schemas").glob("*.json")) == sorted(
        p.name for p in (REPO / "schemas").glob("*.json")
    )


def _run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )


def test_the_installed_wheel_works_from_anywhere(database: TestDatabase, tmp_path: Path) -> None:
    # Build from a copy: the checkout's build/ stays untouched by a test.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "dbops", source / "dbops",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("DB_")}
    wheels = tmp_path / "wheels"
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps",
                 "-q", "-w", wheels, source, cwd=tmp_path, env=env)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("dbops-*.whl")

    # Dependencies already installed are reused (or fetched from PyPI); dbops comes from the wheel.
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--system-site-packages", venv, cwd=tmp_path, env=env)
    python, dbops = venv / "bin" / "python", venv / "bin" / "dbops"
    for extra in (["--no-deps", "--force-reinstall"], []):
        installed = _run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                         *extra, wheel, cwd=tmp_path, env=env)
        assert installed.returncode == 0, installed.stderr
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    project = make_project(tmp_path / "project", database)
    (project.root / "migrations" / "20250101000001_notes.sql").write_text(
        "-- migrate:up\nCREATE TABLE notes (id int PRIMARY KEY);\n"
        "-- migrate:down\nDROP TABLE notes;\n"
    )

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return _run(*args, cwd=project.root, env=env)

    where = run(python, "-c", "import dbops; print(dbops.__file__)")
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    assert Path(where.stdout.strip()).is_relative_to(Path(site.stdout.strip())), where.stdout

    version = run(dbops, "--version")
    assert (version.returncode, version.stdout.strip()) == (0, "dbops, version 0.1.0")
    assert run(python, "-m", "dbops", "--version").stdout == version.stdout
    for args, code in [
        (("migrate", "hash"), 0),
        (("validate",), 0),
        (("plan", "test", "--diff"), 2),
        (("apply", "test", "--yes"), 0),
        (("drift", "test"), 0),
        (("plan", "test", "--diff"), 0),
    ]:
        result = run(dbops, *args)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
    with database.connect() as conn:
        assert conn.execute("SELECT to_regclass('notes') IS NOT NULL").fetchone() == (True,)
