"""Least privilege: the README's role and grants run the whole main job; a role without them is
told what it lacks by doctor and plan, and apply refuses before changing anything."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import Project
from psycopg import sql

README = Path(__file__).resolve().parents[1] / "README.md"


@dataclass(frozen=True)
class Roles:
    dbops: str  # the role dbops connects as
    owner: str  # the application's owner role
    reader: str  # a role the plan declares


def documented_grants() -> tuple[list[str], list[str]]:
    """The README's least-privilege statements: (cluster-wide ones, ones run in the database)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Least-privilege setup", 1)[1]
    block = section.split("```sql\n", 1)[1].split("```", 1)[0]
    cluster, database = block.split("\\c appdb\n")

    def statements(part: str) -> list[str]:
        lines = [line.split("--", 1)[0].strip() for line in part.splitlines()]
        return [s.strip() for s in " ".join(lines).split(";") if s.strip()]

    return statements(cluster), statements(database)


@pytest.fixture
def roles(project: Project, server_reset: None) -> Iterator[Roles]:
    """Unique role names; on exit their objects and privileges are dropped, then the roles."""
    suffix = uuid.uuid4().hex[:8]
    names = Roles(f"app_dbops_{suffix}", f"app_owner_{suffix}", f"app_reader_{suffix}")
    yield names
    with project.database.connect() as conn:
        made = [r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname IN (%s, %s)",
                                           (names.dbops, names.owner))]
        if made:
            ours = sql.SQL(", ").join(sql.Identifier(n) for n in made)
            conn.execute(sql.SQL("REASSIGN OWNED BY {} TO postgres").format(ours))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(ours))
            conn.execute(sql.SQL("DROP ROLE {}").format(ours))


def write_project(project: Project, roles: Roles) -> None:
    project.write_plan(
        "settings:\n  work_mem: 20MB\n"
        f"roles:\n  {roles.reader}: {{ login: true }}\n"
        f"migrations:\n  role: {roles.owner}\n"
        "backup:\n  directory: backups\n  verify: { restore_test: each }\n"
        "health:\n  gates: { settle: 0s }\n")
    (project.root / "migrations" / "20250101000001_widgets.sql").write_text(
        "-- migrate:up\nCREATE TABLE widgets (id int PRIMARY KEY);\n"
        "INSERT INTO widgets VALUES (1);\n-- migrate:down\nDROP TABLE widgets;\n")
    assert project.run("migrate", "hash").returncode == 0


def test_the_documented_role_runs_the_main_job(project: Project, roles: Roles) -> None:
    write_project(project, roles)
    cluster, in_database = documented_grants()
    names = {"dbops": roles.dbops, "app_owner": roles.owner, "appdb": project.database.name}

    def named(statement: str) -> str:
        return re.sub(r"\b(dbops|app_owner|appdb)\b", lambda m: names[m.group(1)], statement)

    with project.database.connect() as conn:
        for statement in [*cluster, *in_database]:
            conn.execute(named(statement).encode())
    as_dbops = {"DB_USER": roles.dbops}

    for args in [("validate", "test"), ("doctor", "test"), ("plan", "test")]:
        result = project.run(*args, env=as_dbops)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert "MISSING" not in result.stdout and "missing privilege" not in result.stdout
    applied = project.run("apply", "test", "--yes", env=as_dbops)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "stage backup first" in applied.stdout and "stage gate: after apply" in applied.stdout
    for args, code in [(("plan", "test", "--diff"), 0), (("drift", "test"), 0)]:
        again = project.run(*args, env=as_dbops)
        assert again.returncode == code, (args, again.stdout, again.stderr)
    backup_id = next(p.name for p in (project.root / "backups").iterdir() if p.is_dir())
    # The dump holds GRANT ... pg_reload_conf() TO dbops: a restore test as dbops still passes.
    verified = project.run("backup", "verify", "test", backup_id, "--restore-test", env=as_dbops)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    with project.database.connect() as conn:
        assert conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'widgets'"
                            ).fetchone() == (roles.owner,)
        assert conn.execute("SELECT applied_by_role FROM dbops.migration_history").fetchall() \
            == [(roles.dbops,)]
        assert conn.execute("SELECT nspowner::regrole::text FROM pg_namespace"
                            " WHERE nspname = 'dbops'").fetchone() == (roles.dbops,)
        assert conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s",
                            (roles.reader,)).fetchone() == (True,)
        assert conn.execute("SELECT setting FROM pg_file_settings WHERE name = 'work_mem'"
                            " AND sourcefile LIKE '%postgresql.auto.conf'").fetchone() == ("20MB",)


def test_a_bare_role_is_told_what_it_lacks_and_apply_changes_nothing(
    project: Project, roles: Roles
) -> None:
    write_project(project, roles)
    with project.database.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(roles.owner)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(roles.dbops)))
    as_dbops = {"DB_USER": roles.dbops}
    to = roles.dbops

    doctor = project.run("doctor", "test", env=as_dbops)
    assert doctor.returncode == 1, doctor.stderr
    lines = doctor.stdout.splitlines()
    assert lines[lines.index(""):] == [
        "",
        f"To give {to} what this plan needs, run as a superuser:",
        f"  GRANT CREATE ON DATABASE {project.database.name} TO {to};",
        f"  GRANT pg_monitor TO {to};",
        f"  GRANT ALTER SYSTEM ON PARAMETER work_mem TO {to};",
        f"  GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO {to};",
        f"  ALTER ROLE {to} CREATEROLE;",
        f"  GRANT {roles.owner} TO {to};",
        f"  ALTER ROLE {to} CREATEDB;",  # an empty database: pg_dump can read it all
    ]
    assert "  MISSING settings.work_mem: ALTER SYSTEM on work_mem" in doctor.stdout.splitlines()

    plan = project.run("plan", "test", env=as_dbops)
    assert plan.returncode == 0, plan.stderr
    assert (f"  missing privilege: settings.work_mem: ALTER SYSTEM on work_mem: "
            f"GRANT ALTER SYSTEM ON PARAMETER work_mem TO {to};") in plan.stdout.splitlines()

    applied = project.run("apply", "test", "--yes", env=as_dbops)
    assert applied.returncode == 1
    assert len(applied.stderr.splitlines()) == 1
    assert applied.stderr.startswith(
        f"error: apply refused, nothing was changed: {to} lacks dbops: schema dbops")
    assert "`dbops doctor test` prints the GRANT statements" in applied.stderr
    with project.database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'dbops'"
                            ).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s",
                            (roles.reader,)).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pg_file_settings WHERE name = 'work_mem'"
                            " AND sourcefile LIKE '%postgresql.auto.conf'").fetchone() == (0,)
    assert not (project.root / "backups").exists() or not any((project.root / "backups").iterdir())


def test_migrations_role_owns_what_journaled_steps_create_and_rolls_back(
    project: Project, roles: Roles
) -> None:
    """A migration in steps (CREATE INDEX CONCURRENTLY runs outside a transaction) and its
    rollback run as migrations.role; the history and journal stay the connecting role's."""
    from dbops.migrate.engine import MigrationEngine

    with project.database.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(roles.owner)))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(
            sql.Identifier(roles.owner)))
    project.write_plan(f"migrations:\n  role: {roles.owner}\n  rehearse: never\n")
    (project.root / "migrations" / "20250101000002_gadgets.sql").write_text(
        "-- migrate:up\nCREATE TABLE gadgets (id int);\n"
        "CREATE INDEX CONCURRENTLY gadgets_id ON gadgets (id);\n"
        "-- migrate:down\nDROP INDEX CONCURRENTLY gadgets_id;\nDROP TABLE gadgets;\n")
    assert project.run("migrate", "hash").returncode == 0
    engine = MigrationEngine.from_plan("test")
    result = engine.run_migrations()
    assert [e.mode for e in result.executions] == ["steps"]
    with project.database.connect() as conn:
        assert conn.execute("SELECT relowner::regrole::text FROM pg_class WHERE relname IN"
                            " ('gadgets', 'gadgets_id')").fetchall() == [(roles.owner,)] * 2
        assert conn.execute("SELECT applied_by_role, execution_mode FROM dbops.migration_history"
                            ).fetchall() == [("postgres", "steps")]
    engine.rollback_migrations(count=1)
    with project.database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname = 'gadgets'"
                            ).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM dbops.migration_history").fetchone() == (0,)


def test_judging_is_pure_and_names_what_each_server_version_allows(project: Project) -> None:
    from dbops.config.load import load_plan
    from dbops.privileges import Facts, judge, missing, statements

    project.write_plan("settings:\n  work_mem: 20MB\nbackup:\n  directory: backups\n"
                       "  verify: { restore_test: never }\n")
    plan = load_plan("test", root=project.root)
    old = Facts(role="ops", superuser=False, server_version=140011, database="app",
                ledger_schema=True, monitor=True, reload=True, alter_system={"work_mem": False},
                unreadable=("public.secrets",), replicas={"replica1": "cannot connect"})
    found = {f.subject: f for f in judge(plan, old)}
    assert str(found["settings.work_mem"]) == (
        "settings.work_mem: ALTER SYSTEM on work_mem (before PostgreSQL 15 only a superuser may)")
    assert str(found["backup"]) == ("backup: read every table and sequence (pg_dump) (cannot read "
                                    "public.secrets): GRANT pg_read_all_data TO ops;")
    assert "backup.verify.restore_test" not in found  # restore_test: never needs no CREATEDB
    assert [f.subject for f in missing(judge(plan, old))] == [
        "settings.work_mem", "backup", "database.replicas.replica1"]
    superuser = Facts(role="postgres", superuser=True, server_version=150004, database="app")
    findings = judge(plan, superuser)
    assert [str(f) for f in missing(findings, blocking=False)] == [
        "migrations.role: objects owned by the application's owner role (migrations run as "
        "postgres, a superuser, so new objects belong to it; set migrations.role to the "
        "application's owner role)"]
    assert statements(findings) == [
        "GRANT CREATE ON DATABASE app TO dbops;", "GRANT pg_monitor TO dbops;",
        "GRANT ALTER SYSTEM ON PARAMETER work_mem TO dbops;",
        "GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO dbops;",
        "GRANT pg_read_all_data TO dbops;"]


def test_names_the_server_reserves_are_quoted_in_the_statements(project: Project) -> None:
    """The probe reads the server's own keywords (pg_get_keywords): a role named like one is
    quoted in the statements `dbops doctor` prints, an ordinary name is not."""
    from dbops.config.load import load_plan
    from dbops.privileges import Facts, judge, probe, statements

    plan = load_plan("test", root=project.root)
    keywords = probe(plan, replicas=False).keywords
    assert {"select", "user", "order"} <= keywords and "widgets" not in keywords
    for role, shown in (("user", '"user"'), ("ops", "ops")):
        facts = Facts(role=role, superuser=False, server_version=160000, database="order",
                      keywords=keywords)
        assert f'GRANT CREATE ON DATABASE "order" TO {shown};' in statements(judge(plan, facts))
