"""Real PostgreSQL for tests: scratch areas the server's OS user can reach, clusters that are
always stopped, and a fresh database per test."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from dbops.errors import LocalClusterError
from dbops.local import HOST, LOG_FILE, STATE_FILE, SUPERUSER, Cluster, _last_meaningful_line

# Durability buys nothing in a cluster that lives for one test run.
TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}

_open_areas: list[Path] = []


@dataclass(frozen=True)
class TestDatabase:
    """A database on a cluster the harness started."""

    __test__: ClassVar[bool] = False  # a fixture value, not a test class

    host: str
    port: int
    name: str
    user: str = "postgres"

    @property
    def conninfo(self) -> str:
        return make_conninfo(host=self.host, port=str(self.port), dbname=self.name, user=self.user)

    def connect(self) -> psycopg.Connection[TupleRow]:
        return psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)


@contextlib.contextmanager
def scratch_area(prefix: str = "dbops-test-") -> Iterator[Path]:
    """A temporary directory for data directories; on exit every cluster under it is stopped
    and it is removed.

    tmp_path_factory's directories are mode 0700 and owned by root, so the server's OS user
    could not reach a data directory there; this base is mode 0755 instead.
    """
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    _open_areas.append(base)
    try:
        yield base
    finally:
        _stop_clusters_under(base)
        shutil.rmtree(base, ignore_errors=True)
        _open_areas.remove(base)


@contextlib.contextmanager
def fresh_database(cluster: Cluster) -> Iterator[TestDatabase]:
    """A new, empty database on `cluster`, dropped (connections and all) on exit."""
    if cluster.port == 5432:
        raise RuntimeError("the harness never touches port 5432; it is not a harness cluster")
    database = TestDatabase(cluster.host, cluster.port, f"t_{uuid.uuid4().hex[:12]}")
    if not cluster.ensure_database(database.name):
        raise RuntimeError(f"database {database.name} already existed")
    try:
        yield database
    finally:
        admin = TestDatabase(cluster.host, cluster.port, "postgres")
        with admin.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(database.name)
                )
            )


def _stop_clusters_under(base: Path) -> None:
    for pidfile in sorted(base.rglob("postmaster.pid")):
        with contextlib.suppress(Exception):  # keep stopping the others
            Cluster(pidfile.parent).down()


@atexit.register
def _stop_leftovers() -> None:
    """Safety net for a run that ends without fixture teardown."""
    for base in list(_open_areas):
        _stop_clusters_under(base)
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class Project:
    """A scratch dbops project whose plan `test` points at one test database."""

    __test__ = False

    root: Path
    database: TestDatabase

    @property
    def plan(self) -> Path:
        return self.root / "plans" / "test.yaml"

    def write_plan(self, extra: str = "", *, environment: str = "test", database: str = "") -> Path:
        """(Re)write plans/<environment>.yaml for the database, with `extra` YAML appended and
        `database` lines added to the database section."""
        db = self.database
        path = self.root / "plans" / f"{environment}.yaml"
        path.write_text(
            "apiVersion: dbops/v1\n"
            f"environment: {environment}\n"
            "database:\n"
            f"  host: {db.host}\n  port: {db.port}\n  name: {db.name}\n  user: {db.user}\n"
            "  password: ${DB_PASSWORD:-}\n  sslmode: disable\n"
            + database
            + "pool: { instances: 1, min_size: 1, max_size: 4 }\n"
            + extra
        )
        return path

    def run(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real `dbops` command line in the project (or in `cwd`), as a user would."""
        environ = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DB_") and k != "DBOPS_PROJECT_DIR"
        }
        return subprocess.run(
            [sys.executable, "-m", "dbops", *args],
            cwd=self.root if cwd is None else cwd,
            env={**environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def make_project(root: Path, database: TestDatabase) -> Project:
    (root / "plans").mkdir(parents=True)
    (root / "migrations").mkdir()
    project = Project(root, database)
    project.write_plan()
    return project


def start_replica(primary: Cluster, data_dir: Path, *, port: int | None = None) -> Cluster:
    """Clone the running `primary` with pg_basebackup into `data_dir` as a streaming
    replica, start it on its own port and return it."""
    if not primary.status().running:
        raise LocalClusterError(
            f"the primary in {primary.data_dir} is not running: call up() before start_replica()"
        )
    primary_port = primary.port
    replica = Cluster(data_dir, port=port, settings=primary._settings)
    if not replica.status().initialized:
        replica._prepare_data_dir()
        if any(replica.data_dir.iterdir()):
            raise LocalClusterError(
                f"replica data directory {replica.data_dir} is not empty: "
                "remove it or choose another"
            )
        result = replica._run(
            [
                str(primary._tool("pg_basebackup")),
                "--host", HOST,
                "--port", str(primary_port),
                "--username", SUPERUSER,
                "--pgdata", str(replica.data_dir),
                "--write-recovery-conf",
                "--wal-method=stream",
                "--checkpoint=fast",
                "--no-password",
            ],
            what="pg_basebackup",
            timeout=600,
        )  # fmt: skip
        if result.returncode != 0:
            raise LocalClusterError(
                f"pg_basebackup from {HOST}:{primary_port} into {replica.data_dir} failed: "
                f"{_last_meaningful_line(result.stderr + result.stdout)}"
            )
        # The copy carries the primary's port memory and log; the replica needs its own.
        for copied in (STATE_FILE, LOG_FILE):
            (replica.data_dir / copied).unlink(missing_ok=True)
    replica.up()
    return replica
