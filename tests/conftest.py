"""Fixtures backed by real PostgreSQL clusters the harness starts itself (see harness.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from harness import (
    TEST_SETTINGS,
    Project,
    TestDatabase,
    fresh_database,
    make_project,
    scratch_area,
    start_replica,
)
from psycopg import sql

from dbops.local import Cluster

# Commands the tests run as subprocesses import this checkout's dbops, whatever is installed.
REPO = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


@pytest.fixture(scope="session")
def pg_area() -> Iterator[Path]:
    """The session's scratch directory holding the primary's and the replica's data."""
    with scratch_area() as base:
        yield base


@pytest.fixture(scope="session")
def pg_primary(pg_area: Path) -> Iterator[Cluster]:
    """A started primary cluster shared by the whole session."""
    cluster = Cluster(pg_area / "primary", settings=TEST_SETTINGS)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


@pytest.fixture(scope="session")
def pg_replica(pg_primary: Cluster, pg_area: Path) -> Iterator[Cluster]:
    """A started streaming replica of pg_primary."""
    replica = Cluster(pg_area / "replica")  # stops it even if start_replica fails half-way
    try:
        replica = start_replica(pg_primary, replica.data_dir)
        yield replica
    finally:
        replica.down()


@pytest.fixture
def database(pg_primary: Cluster) -> Iterator[TestDatabase]:
    """A fresh, empty database on pg_primary for one test, dropped afterwards."""
    with fresh_database(pg_primary) as db:
        yield db


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    """A directory for a test's own data directories; clusters left running under it are
    stopped and it is removed afterwards."""
    with scratch_area() as base:
        yield base


@pytest.fixture
def project(database: TestDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A scratch dbops project (plans/test.yaml -> the test's database) as the working directory."""
    project = make_project(tmp_path / "project", database)
    monkeypatch.chdir(project.root)
    return project


@pytest.fixture
def server_reset(pg_primary: Cluster, pg_replica: Cluster) -> Iterator[None]:
    """Tests that apply server settings or roles leave both servers as they found them."""
    yield
    for cluster in (pg_primary, pg_replica):
        with psycopg.connect(
            host=cluster.host,
            port=cluster.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
        ) as conn:
            # Not RESET ALL: a replica's primary_conninfo lives in postgresql.auto.conf too.
            written = conn.execute(
                "SELECT DISTINCT name FROM pg_file_settings WHERE sourcefile"
                " LIKE '%postgresql.auto.conf'"
            ).fetchall()
            for (name,) in written:
                if not name.startswith("primary_"):
                    conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
            conn.execute("SELECT pg_reload_conf()")
            if cluster is pg_primary:
                for (role,) in conn.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname LIKE 'app_%'"
                ):
                    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
