"""Apply N one-table migrations with dbops, alembic, yoyo and psql -f, side by side; then time
`dbops migrate status` against `alembic current` with M migrations applied.

What it measures. Every tool applies the same N migrations, each one transaction running
`CREATE TABLE bench_table_<n> (...)`, to a fresh empty database of one throwaway PostgreSQL
cluster (started here with dbops.local on a free port, server defaults, durability untouched,
stopped and removed at the end). The time is the wall clock of the whole command run as a
subprocess, Python start-up included, since that is what a user waits for:

  psql -f   one file of N `BEGIN; CREATE TABLE ...; COMMIT;` blocks (the floor: no bookkeeping)
  alembic   `alembic upgrade head`: the project `alembic init` makes, plus
            transaction_per_migration=True, N revisions chained by down_revision (op.execute)
  yoyo      `yoyo apply --batch` of a directory of N plain .sql migrations (a transaction each)
  dbops     `dbops migrate up bench --yes` of N dbops migration files (after `migrate hash`)

Python tools run with this interpreter (`python -m ...`, no version-manager shim) and with the
bytecode cache on (PYTHONDONTWRITEBYTECODE dropped, the cache kept in a private
PYTHONPYCACHEPREFIX); one untimed warm-up run per tool fills it, so installed code starts warm
as after `pip install`. Each repeat generates every project afresh in a new directory (a fresh
checkout: alembic compiles its revision files in the timed run) and a new database; a
CHECKPOINT before each timed command keeps checkpoints out of the runs.
Every run is checked afterwards: N bench tables exist (and N rows in dbops.migration_history for
dbops); a run that exits 0 without applying everything counts as failed.

Status: M migrations are applied (untimed) with alembic and with dbops, one warm-up call each,
then `alembic current` and `dbops migrate status bench` are timed alternately.

Real history: a real project's whole SQL history (default: crates.io's 285 Diesel migrations,
converted by tests/histories/convert_crates_io.py) applied to a fresh database by
  psql -f   one file: each migration's up section in a `BEGIN; …; COMMIT;` block (the ones marked
            `-- dbops:transaction off`, CREATE INDEX CONCURRENTLY, without one)
  python floor  the floor of any Python tool: Python, psycopg and the same messages, nothing else
  dbops     `dbops migrate up bench --yes` with the shipped plans/base.yaml migration settings
            (zero_downtime: true, lint.fail_on: error, rehearse: auto)
alternately, after one untimed dbops run (a warm-up that also counts the tables the history
makes); every run is checked for that many tables (and one history row per migration for dbops).
As a developer re-runs a history: each tool's project is written once and its database is dropped
and made anew, under the same name, for every run, so dbops' cache of plans it validated before
(.dbops/cache in the project) is warm, as it is from a project's second run on. The untimed
first run, in a new project with nothing cached (a fresh CI checkout), is reported on its own.
Alembic and yoyo are left out of this row: alembic needs Python migrations, and the point is the
engine's cost on real DDL against the floor.

Results: a table of medians, minimums and ratios on stdout, and bench/results/migrations.json
(or --output).
The issue's targets: dbops faster than alembic and yoyo, at most 1.5x psql -f; status under half
of `alembic current`. A failed tool is reported with its stderr tail; the exit status is then 1.

Run from the project root (PostgreSQL server binaries, psql, alembic and yoyo-migrations needed):

    python3 bench/bench_migrations.py [--count 500] [--status-count 1000] [--repeat 3]
        [--tools psql,alembic,yoyo,dbops] [--history DIR | --history ''] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import sql

from dbops.local import HOST, SUPERUSER, Cluster, free_port
from dbops.migrate import files

REPO = Path(__file__).resolve().parents[1]
RESULTS_FILE = REPO / "bench" / "results" / "migrations.json"
HISTORY = REPO / "tests" / "histories" / "crates_io" / "migrations"
USER_TABLES = "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', " \
    "'information_schema', 'dbops')"
COMMAND_TIMEOUT = 1800.0
TAIL_LINES = 25
WARM_UP_COUNT = 3
FIRST_VERSION = datetime(2025, 1, 1, tzinfo=UTC)
BENCH_TABLES = r"SELECT count(*) FROM pg_tables WHERE tablename LIKE 'bench\_table\_%'"
DBOPS_HISTORY = "SELECT count(*) FROM dbops.migration_history"
TARGET_VS_PSQL = 1.5
TARGET_STATUS_VS_ALEMBIC = 0.5


class ToolFailed(Exception):
    """A tool's command failed or did not do the work; `detail` is what it said."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class Database:
    port: int
    name: str

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{self.name}"


@dataclass(frozen=True)
class Command:
    argv: list[str]
    cwd: Path

    def __str__(self) -> str:
        return " ".join(self.argv)


@dataclass(frozen=True)
class Project:
    """A tool's generated project: the command to time, and optionally its status command."""

    apply: Command
    status: Command | None = None
    status_must_print: str | None = None


@dataclass(frozen=True)
class Tool:
    name: str
    write_project: Callable[[Path, Database, int], Project]
    history_query: str | None = None

    @property
    def label(self) -> str:
        """The short name used on the command line and in directory names."""
        return self.name.split()[0]


@dataclass
class Timings:
    """The timed runs of one command; `error` is set once it failed (its runs then stop)."""

    name: str
    command: str = ""
    seconds: list[float] = field(default_factory=list)
    error: str | None = None
    first_run: float | None = None  # an untimed first run, when the bench makes one

    @property
    def failed(self) -> bool:
        return self.error is not None or not self.seconds

    @property
    def median(self) -> float | None:
        return None if self.failed else statistics.median(self.seconds)

    @property
    def minimum(self) -> float | None:
        return None if self.failed else min(self.seconds)


def create_table_sql(n: int) -> str:
    return (
        f"CREATE TABLE bench_table_{n} (id bigint PRIMARY KEY, payload text, "
        "created_at timestamptz NOT NULL DEFAULT now());"
    )


def python_tool(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def write_psql_project(directory: Path, db: Database, count: int) -> Project:
    script = directory / "bench.sql"
    blocks = (f"BEGIN;\n{create_table_sql(n)}\nCOMMIT;\n" for n in range(1, count + 1))
    script.write_text("".join(blocks), encoding="utf-8")
    argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p", str(db.port),
            "-U", SUPERUSER, "-d", db.name, "-f", str(script)]  # fmt: skip
    return Project(Command(argv, directory))


ALEMBIC_REVISION = '''\
"""create bench_table_{n}"""

from alembic import op

revision = "{revision}"
down_revision = {down_revision}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("{sql}")


def downgrade() -> None:
    op.execute("DROP TABLE bench_table_{n}")
'''


def alembic_revision(n: int) -> str:
    return f"{n:012x}"


def write_alembic_project(directory: Path, db: Database, count: int) -> Project:
    """The project `alembic init` makes, pointed at `db`, with transaction_per_migration=True."""
    run(Command(python_tool("alembic", "init", "--template", "generic", "alembic"), directory))
    patch(directory / "alembic.ini", "sqlalchemy.url = driver://user:pass@localhost/dbname",
          f"sqlalchemy.url = {db.sqlalchemy_url}")  # fmt: skip
    patch(directory / "alembic" / "env.py", "connection=connection, target_metadata=target_metadata",
          "connection=connection, target_metadata=target_metadata, transaction_per_migration=True")  # fmt: skip
    versions = directory / "alembic" / "versions"
    for n in range(1, count + 1):
        down = f'"{alembic_revision(n - 1)}"' if n > 1 else "None"
        text = ALEMBIC_REVISION.format(
            n=n, revision=alembic_revision(n), down_revision=down, sql=create_table_sql(n)
        )
        (versions / f"{alembic_revision(n)}_create_bench_table_{n}.py").write_text(text)
    return Project(
        apply=Command(python_tool("alembic", "upgrade", "head"), directory),
        status=Command(python_tool("alembic", "current"), directory),
        status_must_print=alembic_revision(count),
    )


def patch(path: Path, old: str, new: str) -> None:
    """Replace the one occurrence of `old` in a generated file (a changed template fails loudly)."""
    text = path.read_text()
    if text.count(old) != 1:
        raise ToolFailed(f"{path.name} from `alembic init` changed: no single {old!r} to replace")
    path.write_text(text.replace(old, new))


def write_yoyo_project(directory: Path, db: Database, count: int) -> Project:
    migrations = directory / "migrations"
    migrations.mkdir()
    width = max(5, len(str(count)))
    for n in range(1, count + 1):
        name = f"{n:0{width}d}_create_bench_table_{n}.sql"
        (migrations / name).write_text(create_table_sql(n) + "\n")
    argv = python_tool("yoyo", "apply", "--batch", "--no-config-file",
                       "--database", db.sqlalchemy_url, str(migrations))  # fmt: skip
    return Project(Command(argv, directory))


DBOPS_PLAN = """\
apiVersion: dbops/v1
environment: bench
database: {{ host: {host}, port: {port}, name: {name}, user: {user}, sslmode: disable }}
migrations: {{ directory: migrations }}
"""

DBOPS_MIGRATION = """\
-- create bench_table_{n}
-- dbops:risk low
-- dbops:estimated-duration 1s

-- migrate:up
{sql}

-- migrate:down
DROP TABLE bench_table_{n};
"""


def dbops_version(n: int) -> str:
    return (FIRST_VERSION + timedelta(seconds=n)).strftime("%Y%m%d%H%M%S")


def write_dbops_project(directory: Path, db: Database, count: int) -> Project:
    (directory / "plans").mkdir()
    plan = DBOPS_PLAN.format(host=HOST, port=db.port, name=db.name, user=SUPERUSER)
    (directory / "plans" / "bench.yaml").write_text(plan)
    migrations = directory / "migrations"
    migrations.mkdir()
    for n in range(1, count + 1):
        text = DBOPS_MIGRATION.format(n=n, sql=create_table_sql(n))
        (migrations / f"{dbops_version(n)}_create_bench_table_{n}.sql").write_text(text)
    run(Command(python_tool("dbops", "migrate", "hash"), directory))  # untimed: writes dbops.sum
    return Project(
        apply=Command(python_tool("dbops", "migrate", "up", "bench", "--yes"), directory),
        status=Command(python_tool("dbops", "migrate", "status", "bench"), directory),
        status_must_print=f"{count} applied",
    )


def history_sql(history: Path) -> str:
    """The history as one psql file, one transaction per migration (none for those marked
    `-- dbops:transaction off`)."""
    parts = []
    for migration in files.load(history):
        body = f"{migration.up.text}\n;\n"
        parts.append(f"BEGIN;\n{body}COMMIT;\n" if migration.transaction else body)
    return "\n".join(parts)


def write_psql_history(directory: Path, db: Database, history: Path) -> Command:
    script = directory / "history.sql"
    script.write_text(history_sql(history), encoding="utf-8")
    return Command(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p", str(db.port),
                    "-U", SUPERUSER, "-d", db.name, "-f", str(script)], directory)  # fmt: skip


def write_dbops_history(directory: Path, db: Database, history: Path) -> Command:
    """A dbops project with the history and the shipped base plan's migration settings."""
    (directory / "plans").mkdir()
    settings = yaml.safe_load((REPO / "plans" / "base.yaml").read_text())["migrations"]
    plan = DBOPS_PLAN.format(host=HOST, port=db.port, name=db.name, user=SUPERUSER)
    plan = plan.replace("migrations: { directory: migrations }", f"migrations: {json.dumps(settings)}")
    (directory / "plans" / "bench.yaml").write_text(plan)
    shutil.copytree(history, directory / "migrations")
    return Command(python_tool("dbops", "migrate", "up", "bench", "--yes"), directory)


# The floor of any Python migration tool: start Python, import psycopg, connect, and send the
# history as psql does (one message per transactional migration, the others statement by
# statement), with nothing else: no plan, no parse, no history table, no lock.
FLOOR_CLIENT = """
import json, sys
import psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    for message in json.load(open(sys.argv[2], encoding="utf-8")):
        conn.execute(message, prepare=False)
"""


def write_floor_history(directory: Path, db: Database, history: Path) -> Command:
    messages: list[str] = []
    for migration in files.load(history):
        if migration.transaction:
            messages.append(f"BEGIN;\n{migration.up.text}\n;\nCOMMIT")
        else:
            messages += [s.text for s in migration.up.statements(migration.path)]
    (directory / "messages.json").write_text(json.dumps(messages), encoding="utf-8")
    (directory / "floor.py").write_text(FLOOR_CLIENT, encoding="utf-8")
    dsn = f"host={HOST} port={db.port} user={SUPERUSER} dbname={db.name}"
    return Command([sys.executable, "floor.py", dsn, "messages.json"], directory)


HISTORY_TOOLS: tuple[tuple[str, Callable[[Path, Database, Path], Command]], ...] = (
    ("psql -f", write_psql_history),
    ("python floor", write_floor_history),
    ("dbops", write_dbops_history),
)


TOOLS: tuple[Tool, ...] = (
    Tool("psql -f", write_psql_project),
    Tool("alembic", write_alembic_project),
    Tool("yoyo", write_yoyo_project),
    Tool("dbops", write_dbops_project, history_query=DBOPS_HISTORY),
)
STATUS_TOOLS = ("alembic", "dbops")


def prepare_environment(pycache: Path) -> None:
    """Set the environment every tool inherits: no libpq (PG*) or dbops (DB_*) variables that could
    point a tool at another server, and Python's bytecode cache on, as in a normal install, kept
    in `pycache` so that nothing is written next to the sources (dbops/ included)."""
    for name in [n for n in os.environ if n.startswith(("PG", "DB_"))]:
        del os.environ[name]
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(pycache)


def tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-TAIL_LINES:])


def run(command: Command) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; raise ToolFailed on a non-zero exit or a timeout."""
    try:
        result = subprocess.run(
            command.argv,
            cwd=command.cwd,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolFailed(f"`{short(command)}` took over {COMMAND_TIMEOUT:.0f}s") from exc
    except OSError as exc:
        raise ToolFailed(f"cannot run `{short(command)}`: {exc}") from exc
    if result.returncode != 0:
        raise ToolFailed(
            f"`{short(command)}` exited with {result.returncode}",
            tail(result.stderr or result.stdout),
        )
    return result


def timed(command: Command) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    result = run(command)
    return time.perf_counter() - start, result


class Server:
    """The bench's PostgreSQL cluster: fresh databases, checkpoints and the after-run checks."""

    def __init__(self, cluster: Cluster) -> None:
        self.port = cluster.port
        self._serial = 0

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=HOST, port=self.port, user=SUPERUSER, dbname=dbname, autocommit=True
        )

    def fresh_database(self, label: str) -> Database:
        self._serial += 1
        name = f"bench_{self._serial}_{label}"
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return Database(self.port, name)

    def recreate_database(self, db: Database) -> None:
        """A fresh, empty database under `db`'s name (a CI database made anew for each run)."""
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(db.name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db.name)))

    def drop_database(self, db: Database) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db.name)))

    def checkpoint(self) -> None:
        with self.connect() as conn:
            conn.execute("CHECKPOINT")

    def version(self) -> str:
        with self.connect() as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"

    def verify(self, db: Database, count: int, history_query: str | None) -> None:
        """Raise ToolFailed unless `count` bench tables (and history rows) exist in `db`."""
        checks = [("bench tables", BENCH_TABLES)]
        if history_query is not None:
            checks.append(("rows in dbops.migration_history", history_query))
        with self.connect(db.name) as conn:
            for what, query in checks:
                try:
                    row = conn.execute(query).fetchone()
                except psycopg.Error as exc:
                    raise ToolFailed(f"cannot count {what}: {exc}") from exc
                found = row[0] if row else 0
                if found != count:
                    raise ToolFailed(f"exited 0 but {db.name} has {found} {what}, not {count}")


def apply_once(server: Server, tool: Tool, workdir: Path, count: int) -> tuple[float, str]:
    """Time `tool` applying `count` migrations to a fresh database; return (seconds, command)."""
    db = server.fresh_database(tool.label)
    try:
        project = tool.write_project(new_directory(workdir, tool), db, count)
        server.checkpoint()
        seconds, _ = timed(project.apply)
        server.verify(db, count, tool.history_query)
    finally:
        server.drop_database(db)
    return seconds, str(project.apply)


def new_directory(workdir: Path, tool: Tool) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{tool.label}-", dir=workdir))


def record_failure(timings: Timings, exc: ToolFailed) -> None:
    timings.error = str(exc)
    print(f"\nFAILED {timings.name}: {exc}", file=sys.stderr)
    if exc.detail:
        print("  " + exc.detail.replace("\n", "\n  "), file=sys.stderr)


def rotated(tools: Sequence[Tool], by: int) -> list[Tool]:
    """The tools in turn, starting at another one each repeat, so none always runs first."""
    shift = by % len(tools)
    return [*tools[shift:], *tools[:shift]]


def measure_apply(
    server: Server, tools: Sequence[Tool], workdir: Path, count: int, repeat: int
) -> list[Timings]:
    results = {tool.name: Timings(tool.name) for tool in tools}
    for tool in tools:
        try:  # untimed: fills the bytecode cache and the OS page cache for the tool's own code
            apply_once(server, tool, workdir, WARM_UP_COUNT)
        except ToolFailed as exc:
            record_failure(results[tool.name], exc)
    for round_ in range(repeat):
        for tool in rotated(tools, round_):
            timings = results[tool.name]
            if timings.error is not None:
                continue
            try:
                seconds, timings.command = apply_once(server, tool, workdir, count)
            except ToolFailed as exc:
                record_failure(timings, exc)
                continue
            timings.seconds.append(seconds)
            print(f"  {tool.name:8} run {round_ + 1}: {seconds:7.2f}s", flush=True)
    return [results[tool.name] for tool in tools]


def history_once(server: Server, name: str, write: Callable[[Path, Database, Path], Command],
                 history: Path, workdir: Path, tables: int | None,
                 projects: dict[str, Command]) -> tuple[float, str, int]:
    """Time one tool applying the whole history to a fresh database; checks `tables` tables
    (when known) and, for dbops, one history row per migration. Returns (seconds, command,
    tables found). As a team's CI runs it: each tool's project is written once (in `projects`)
    and its database is made anew, under the same name, for every run."""
    db = Database(server.port, f"bench_history_{name.split()[0]}")
    server.recreate_database(db)
    try:
        if name not in projects:
            projects[name] = write(Path(tempfile.mkdtemp(prefix="history-", dir=workdir)), db,
                                   history)
        command = projects[name]
        server.checkpoint()
        seconds, _ = timed(command)
        with server.connect(db.name) as conn:
            row = conn.execute(USER_TABLES).fetchone()
            found = int(row[0]) if row else 0
            if tables is not None and found != tables:
                raise ToolFailed(f"exited 0 but {db.name} has {found} tables, not {tables}")
            if name == "dbops":
                rows = conn.execute(DBOPS_HISTORY).fetchone()
                expected = len(files.load(history))
                if not rows or rows[0] != expected:
                    raise ToolFailed(f"exited 0 but {db.name} records {rows}, not {expected}")
    finally:
        server.drop_database(db)
    return seconds, str(command), found


def measure_history(server: Server, history: Path, workdir: Path,
                    repeat: int) -> list[Timings]:
    """Time psql -f and dbops on the whole history, alternating which goes first."""
    results = [Timings(name) for name, _ in HISTORY_TOOLS]
    projects: dict[str, Command] = {}
    try:  # untimed: a warm-up, and the number of tables the history makes
        first, _, tables = history_once(server, "dbops", write_dbops_history, history, workdir,
                                        None, projects)
        print(f"  dbops    first run in a new project (no plan cache, no bytecode cache): {first:7.2f}s", flush=True)
        results[-1].first_run = first
    except ToolFailed as exc:
        for timings in results:
            record_failure(timings, exc)
        return results
    pairs = list(zip(HISTORY_TOOLS, results, strict=True))
    for round_ in range(repeat):
        for (name, write), timings in pairs if round_ % 2 == 0 else pairs[::-1]:
            if timings.error is not None:
                continue
            try:
                seconds, timings.command, _ = history_once(server, name, write, history,
                                                           workdir, tables, projects)
            except ToolFailed as exc:
                record_failure(timings, exc)
                continue
            timings.seconds.append(seconds)
            print(f"  {name:8} history run {round_ + 1}: {seconds:7.2f}s", flush=True)
    return results


def history_report(results: Sequence[Timings], history: Path) -> dict[str, Any]:
    medians = {t.name: t.median for t in results}
    return {
        "directory": str(history.relative_to(REPO) if history.is_relative_to(REPO) else history),
        "migrations": len(files.load(history)),
        "runs": [summary(t) | {"ratio_vs_psql": ratio(t.median, medians.get("psql -f"))}
                 for t in results],
        "ratio_dbops_vs_psql": ratio(medians.get("dbops"), medians.get("psql -f")),
        "ratio_floor_vs_psql": ratio(medians.get("python floor"), medians.get("psql -f")),
        "dbops_first_run": next((t.first_run for t in results if t.name == "dbops"), None),
    }


def status_command(server: Server, tool: Tool, workdir: Path, count: int) -> Command:
    """Apply `count` migrations with `tool` (untimed, checked) and return its status command,
    called once already: a warm-up, and proof that it reads the applied state."""
    db = server.fresh_database(tool.label)  # kept until the cluster goes: status reads it
    project = tool.write_project(new_directory(workdir, tool), db, count)
    if project.status is None:
        raise ToolFailed(f"{tool.name} has no status command")
    run(project.apply)
    server.verify(db, count, tool.history_query)
    output = run(project.status).stdout
    if project.status_must_print is not None and project.status_must_print not in output:
        raise ToolFailed(
            f"`{short(project.status)}` did not print {project.status_must_print}", tail(output)
        )
    return project.status


def measure_status(
    server: Server, tools: Sequence[Tool], workdir: Path, count: int, repeat: int
) -> list[Timings]:
    """Time each tool's status command `repeat` times, alternating which goes first."""
    commands: dict[str, Command] = {}
    results = [Timings(tool.name) for tool in tools]
    for tool, timings in zip(tools, results, strict=True):
        try:
            commands[tool.name] = status_command(server, tool, workdir, count)
            timings.command = str(commands[tool.name])
        except ToolFailed as exc:
            record_failure(timings, exc)
    for round_ in range(repeat):
        for timings in results if round_ % 2 == 0 else results[::-1]:
            if timings.error is not None:
                continue
            try:
                seconds, _ = timed(commands[timings.name])
            except ToolFailed as exc:
                record_failure(timings, exc)
                continue
            timings.seconds.append(seconds)
            print(f"  {short(timings.command):28} run {round_ + 1}: {seconds:6.2f}s", flush=True)
    return results


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def summary(timings: Timings) -> dict[str, Any]:
    return {
        "tool": timings.name,
        "command": timings.command,
        "seconds": [round(s, 4) for s in timings.seconds],
        "median": timings.median,
        "min": timings.minimum,
        "failed": timings.failed,
        "error": timings.error,
    }


def apply_report(results: Sequence[Timings]) -> list[dict[str, Any]]:
    medians = {t.name: t.median for t in results}
    return [
        summary(t)
        | {
            "ratio_vs_psql": ratio(t.median, medians.get("psql -f")),
            "ratio_vs_dbops": ratio(t.median, medians.get("dbops")),
        }
        for t in results
    ]


def status_report(results: Sequence[Timings], count: int) -> dict[str, Any]:
    medians = {t.name: t.median for t in results}
    return {
        "count": count,
        "runs": [summary(t) for t in results],
        "ratio_dbops_vs_alembic": ratio(medians.get("dbops"), medians.get("alembic")),
    }


@dataclass(frozen=True)
class Target:
    """One of the issue's targets: dbops' time over a peer's must stay below (or at) `limit`."""

    name: str
    limit: float
    inclusive: bool

    def judge(self, measured: float | None) -> dict[str, Any]:
        met = None
        if measured is not None:
            met = measured <= self.limit if self.inclusive else measured < self.limit
        return {"target": self.name, "ratio": measured, "limit": self.limit, "met": met}


def judge_targets(apply: Sequence[dict[str, Any]], status: dict[str, Any] | None,
                  history: dict[str, Any] | None = None) -> list[Any]:
    medians = {row["tool"]: row["median"] for row in apply}

    def dbops_over(peer: str) -> float | None:
        return ratio(medians.get("dbops"), medians.get(peer))

    return [
        Target("migrate up faster than alembic", 1.0, False).judge(dbops_over("alembic")),
        Target("migrate up faster than yoyo", 1.0, False).judge(dbops_over("yoyo")),
        Target("migrate up <= 1.5x psql -f", TARGET_VS_PSQL, True).judge(dbops_over("psql -f")),
        Target("status < half of alembic current", TARGET_STATUS_VS_ALEMBIC, False).judge(
            status["ratio_dbops_vs_alembic"] if status else None
        ),
        Target("real history <= 1.5x psql -f", TARGET_VS_PSQL, True).judge(
            history["ratio_dbops_vs_psql"] if history else None
        ),
    ]


def versions(server: Server) -> dict[str, str]:
    found = {"postgresql": server.version(), "python": platform.python_version()}
    for package in ("dbops", "alembic", "SQLAlchemy", "yoyo-migrations", "psycopg"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    psql = subprocess.run(["psql", "--version"], capture_output=True, text=True, check=False)
    found["psql"] = psql.stdout.strip()
    git = ["git", "-C", str(RESULTS_FILE.parents[2]), "describe", "--always", "--dirty"]
    commit = subprocess.run(git, capture_output=True, text=True, check=False)
    found["dbops_commit"] = commit.stdout.strip() or "unknown"
    return found


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def short(command: Command | str) -> str:
    """A command without the interpreter's path: `alembic current`, not `/usr/.../python -m ...`."""
    return str(command).split(" -m ", 1)[-1]


def timing_columns(row: dict[str, Any]) -> str:
    if row["failed"]:
        return f"FAILED: {row['error']}"
    return f"{fmt(row['median'], '8.2f')} {fmt(row['min'], '8.2f')}"


def print_report(report: dict[str, Any]) -> None:
    params = report["parameters"]
    print(
        f"\n{params['count']} one-table migrations, one transaction each; "
        f"seconds of wall clock, median and min of {params['repeat']}"
    )
    print(f"{'tool':10} {'median':>8} {'min':>8} {'x psql -f':>10} {'x dbops':>8}")
    for row in report["apply"]:
        ratios = (
            ""
            if row["failed"]
            else (f" {fmt(row['ratio_vs_psql'], '10.2f')} {fmt(row['ratio_vs_dbops'], '8.2f')}")
        )
        print(f"{row['tool']:10} {timing_columns(row)}{ratios}")
    status = report["status"]
    if status is not None:
        print(f"\nstatus with {status['count']} applied")
        print(f"{'command':28} {'median':>8} {'min':>8}")
        for row in status["runs"]:
            print(f"{short(row['command']):28} {timing_columns(row)}")
        print(f"dbops / alembic: {fmt(status['ratio_dbops_vs_alembic'], '.2f')}")
    history = report.get("history")
    if history is not None:
        print(f"\nreal history: {history['migrations']} migrations of {history['directory']}")
        print(f"{'tool':12} {'median':>8} {'min':>8} {'x psql -f':>10}")
        for row in history["runs"]:
            ratios = "" if row["failed"] else f" {fmt(row['ratio_vs_psql'], '10.2f')}"
            print(f"{row['tool']:12} {timing_columns(row)}{ratios}")
        if history.get("dbops_first_run") is not None:
            print(f"dbops, first run in a new project (no plan cache, no bytecode cache): "
                  f"{history['dbops_first_run']:.2f}s")
    print("\ntargets (dbops time / peer time):")
    for target in report["targets"]:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[target["met"]]
        print(f"  {target['target']:34} {fmt(target['ratio'], '.2f'):>6}  {verdict}")


def write_results(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def failures(report: dict[str, Any]) -> list[str]:
    rows = [*report["apply"], *(report["status"] or {}).get("runs", []),
            *(report.get("history") or {}).get("runs", [])]
    return [row["command"] or row["tool"] for row in rows if row["failed"]]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    labels = [tool.label for tool in TOOLS]
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="migrations applied per run")
    parser.add_argument(
        "--status-count", type=int, default=1000,
        help="migrations applied before timing the status commands (0: skip)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="the JSON results file")
    parser.add_argument(
        "--history", default=str(HISTORY),
        help="a dbops migrations directory of a real history, applied whole by psql -f and dbops "
             "(empty: skip)",
    )  # fmt: skip
    parser.add_argument(
        "--tools", default=",".join(labels), help=f"a comma-separated subset of {','.join(labels)}"
    )
    args = parser.parse_args(argv)
    chosen = [label.strip() for label in args.tools.split(",") if label.strip()]
    if not chosen or not set(chosen) <= set(labels):
        parser.error(f"--tools takes a comma-separated subset of {','.join(labels)}")
    if args.count < 1 or args.repeat < 1 or args.status_count < 0:
        parser.error("--count and --repeat must be positive, --status-count not negative")
    args.tools = [tool for tool in TOOLS if tool.label in chosen]
    return args


def run_benchmark(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    """Start the cluster in `base`, measure, stop it; return the report."""
    load_before = os.getloadavg()
    cluster = Cluster(base / "data", port=free_port())
    try:
        cluster.up()
        server = Server(cluster)
        workdir = base / "projects"
        workdir.mkdir()
        print(f"PostgreSQL {server.version()} on {HOST}:{server.port}, {args.count} migrations")
        apply = apply_report(measure_apply(server, args.tools, workdir, args.count, args.repeat))
        status = None
        status_tools = [tool for tool in args.tools if tool.label in STATUS_TOOLS]
        if args.status_count and status_tools:
            print(f"status commands with {args.status_count} migrations applied")
            timings = measure_status(server, status_tools, workdir, args.status_count, args.repeat)
            status = status_report(timings, args.status_count)
        history = None
        if args.history and {"psql", "dbops"} <= {tool.label for tool in args.tools}:
            print(f"real history: {args.history}")
            directory = Path(args.history).resolve()
            history = history_report(measure_history(server, directory, workdir, args.repeat),
                                     directory)
        return {
            "benchmark": "migrations",
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "parameters": {"count": args.count, "repeat": args.repeat},
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
            },
            "versions": versions(server),
            "apply": apply,
            "status": status,
            "history": history,
            "targets": judge_targets(apply, status, history),
        }
    finally:
        cluster.down()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="dbops-bench-"))
    base.chmod(0o755)  # the server runs as another OS user and must reach its data directory
    prepare_environment(base / "pycache")
    try:
        report = run_benchmark(args, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print_report(report)
    write_results(report, args.output)
    print(f"\nresults written to {args.output}")
    failed = failures(report)
    if failed:
        print(f"failed: {'; '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
