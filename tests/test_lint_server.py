"""The linter's picture of PostgreSQL checked against PostgreSQL itself, on one database: the
lock each rule predicts against `pg_locks`, and whether a type change rewrites the table (or
rebuilds its index) against `relfilenode`. Each statement runs in its own rolled-back
transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from harness import fresh_database

from dbops.local import Cluster
from dbops.migrate.analyze import analyze, known_checks, known_columns, known_keys, lint_text
from dbops.migrate.files import Migration, Section, checksum
from dbops.migrate.rulebook import RULES
from dbops.migrate.types import BINARY_COERCIBLE
from dbops.schema_facts import table_stats

SCHEMA = """
CREATE TABLE pipelines (id bigint PRIMARY KEY);
CREATE TABLE tasks (id bigint PRIMARY KEY, pipeline_id bigint, status text, name text,
                    attempt int, external_id bigint, note varchar(100));
CREATE INDEX tasks_status_idx ON tasks (status);
CREATE VIEW task_names AS SELECT id, name FROM tasks;
CREATE MATERIALIZED VIEW task_counts AS SELECT pipeline_id, count(*) FROM tasks GROUP BY 1;
CREATE SEQUENCE task_seq;
CREATE TABLE events (id bigint, at date) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 (id bigint, at date);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE DOMAIN plain_text AS text;
CREATE DOMAIN filled_text AS text CHECK (VALUE <> '');
ALTER TABLE tasks ADD CONSTRAINT attempt_positive CHECK (attempt >= 0) NOT VALID;
"""
MODES = {"AccessShareLock": "ACCESS SHARE", "RowShareLock": "ROW SHARE",
         "RowExclusiveLock": "ROW EXCLUSIVE", "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE",
         "ShareLock": "SHARE", "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE",
         "ExclusiveLock": "EXCLUSIVE", "AccessExclusiveLock": "ACCESS EXCLUSIVE"}
ORDER = list(MODES.values())


class Rollback(Exception):
    pass


@pytest.fixture(scope="module")
def conn(pg_primary: Cluster) -> Iterator[psycopg.Connection[Any]]:
    with fresh_database(pg_primary) as db, db.connect() as connection:
        connection.execute(SCHEMA)
        yield connection


def held(conn: psycopg.Connection[Any], statement: str) -> dict[str, str]:
    """The strongest lock this session holds on each relation right after `statement`."""
    found: dict[str, str] = {}
    # Names read before: a dropped relation leaves pg_class within the transaction.
    names = dict(conn.execute("SELECT oid::int, relname FROM pg_class"
                              " WHERE relnamespace = 'public'::regnamespace").fetchall())
    try:
        with conn.transaction():
            conn.execute(statement)
            for oid, mode in conn.execute(
                    "SELECT relation::int, mode FROM pg_locks"
                    " WHERE pid = pg_backend_pid() AND locktype = 'relation'"):
                relation = names.get(oid)
                if relation is None:
                    continue
                mode = MODES[mode]
                if relation not in found or ORDER.index(mode) > ORDER.index(found[relation]):
                    found[relation] = mode
            raise Rollback
    except Rollback:
        pass
    return found


WITH_LOCKS = sorted(r.id for r in RULES.values() if r.lock and r.example)


@pytest.mark.parametrize("rule", WITH_LOCKS)
def test_each_rule_predicts_the_lock_postgresql_takes(conn: psycopg.Connection[Any],
                                                      rule: str) -> None:
    example = RULES[rule].example
    tables = [name for (name,) in conn.execute(
        "SELECT relname FROM pg_class WHERE relkind IN ('r', 'p')"
        " AND relnamespace = 'public'::regnamespace")]
    [analysis] = analyze(migration(f"{example};"),
                         columns=known_columns(table_stats(conn, tables)))
    finding = next(f for f in analysis.findings if f.rule == rule)
    assert finding.lock == RULES[rule].lock
    locks = held(conn, example)
    for relation, mode in analysis.locks:
        assert locks.get(relation) == mode, (relation, locks)


@pytest.mark.parametrize(("statement", "predicted"), [
    ("COMMENT ON TABLE tasks IS 'work'", {"tasks": "SHARE UPDATE EXCLUSIVE"}),
    ("COMMENT ON COLUMN tasks.name IS 'what'", {"tasks": "SHARE UPDATE EXCLUSIVE"}),
    ("GRANT SELECT ON tasks TO PUBLIC", {}),
    ("REVOKE SELECT ON tasks FROM PUBLIC", {}),
    ("REFRESH MATERIALIZED VIEW task_counts", {"task_counts": "ACCESS EXCLUSIVE"}),
    ("LOCK TABLE tasks IN SHARE MODE", {"tasks": "SHARE"}),
    ("REINDEX INDEX tasks_status_idx", {"tasks_status_idx": "ACCESS EXCLUSIVE"}),
    ("ALTER TABLE tasks VALIDATE CONSTRAINT attempt_positive", {"tasks": "SHARE UPDATE EXCLUSIVE"}),
    ("ALTER TABLE tasks DISABLE TRIGGER ALL", {"tasks": "SHARE ROW EXCLUSIVE"}),
])
def test_cheap_and_other_statements_take_the_predicted_lock(
        conn: psycopg.Connection[Any], statement: str, predicted: dict[str, str]) -> None:
    [analysis] = lint_text(f"{statement};")
    assert dict(analysis.locks) == predicted
    locks = held(conn, statement)
    assert {r: locks.get(r) for r in predicted} == predicted
    if not predicted:  # no lock on the table at all: GRANT and REVOKE are catalog rows
        assert "tasks" not in locks
    cheap = statement.startswith(("COMMENT", "GRANT", "REVOKE", "ALTER TABLE tasks VALIDATE"))
    assert not analysis.findings if cheap else analysis.findings


def test_the_binary_coercible_casts_are_postgresql_s(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        "SELECT s.typname, t.typname FROM pg_cast JOIN pg_type s ON s.oid = castsource"
        " JOIN pg_type t ON t.oid = casttarget WHERE castmethod = 'b'"
        " AND castcontext IN ('a', 'i') AND s.typname NOT LIKE 'reg%'"
        " AND t.typname NOT LIKE 'reg%'").fetchall()
    assert set(rows) == BINARY_COERCIBLE


# (old type, ALTER COLUMN c TYPE ..., what the linter predicts): "none" keeps the table and its
# index, "indexes" keeps the table and rebuilds the index, "rewrite" rewrites the table.
TYPE_CHANGES = [
    ("varchar(100)", "varchar(200)", "none"),
    ("varchar(100)", "varchar(50)", "rewrite"),
    ("varchar(100)", "varchar", "none"),
    ("varchar(100)", "text", "none"),
    ("text", "varchar", "none"),
    ("text", "varchar(100)", "rewrite"),
    ("numeric(10,2)", "numeric(12,2)", "none"),
    ("numeric(10,2)", "numeric(12,4)", "rewrite"),
    ("numeric(10,2)", "numeric", "none"),
    ("numeric", "numeric(10,2)", "rewrite"),
    ("int", "bigint", "rewrite"),
    ("bigint", "int", "rewrite"),
    ("cidr", "inet", "none"),
    ("inet", "cidr", "rewrite"),
    ("char(10)", "char(20)", "rewrite"),
    ("varchar(100)", "char(100)", "rewrite"),
    ("bit(4)", "bit(8)", "rewrite"),
    ("varbit(4)", "varbit(8)", "none"),
    ("timestamp(3)", "timestamp(6)", "none"),
    ("timestamp", "timestamp(3)", "rewrite"),
    ("timestamp", "timestamptz", "rewrite"),  # TimeZone is not UTC in the migration session
    ("time(3)", "time", "none"),
    ("interval", "interval(3)", "rewrite"),
    ("text", "plain_text", "none"),
    ("text", "filled_text", "rewrite"),
    ("plain_text", "text", "none"),
    ("int[]", "bigint[]", "rewrite"),
    ("varchar(10)[]", "text[]", "rewrite"),
    ("varchar(100)", "varchar(200) USING c", "none"),
    ("varchar(100)", "text USING c::text", "none"),
    ("text", "text USING c || ''", "rewrite"),
    ("text", "text USING lower(c)", "rewrite"),
    ("text", 'text COLLATE "C"', "indexes"),
    ("varchar(100)", 'text COLLATE "C"', "indexes"),
]
def migration(text: str) -> Migration:
    return Migration("0" * 14, "t", Path("t.sql"), "", Section(text, 1), None, (), "low", None,
                     False, True, checksum(text))


DOMAINS = ("CREATE DOMAIN plain_text AS text;\n"
           "CREATE DOMAIN filled_text AS text CHECK (VALUE <> '');\n")


def predicted(conn: psycopg.Connection[Any], change: str) -> str:
    """The linter's verdict on `change` to column c of table t, the old type read live."""
    stats = table_stats(conn, ["t"])
    text = DOMAINS + f"ALTER TABLE t ALTER COLUMN c TYPE {change};"
    analyses = analyze(migration(text), columns=known_columns(stats))
    rules = {f.rule for a in analyses for f in a.findings}
    assert len(rules) <= 1, rules
    return {"type-change-rewrites": "rewrite", "type-change-rebuilds-indexes": "indexes"}.get(
        rules.pop() if rules else "", "none")


@pytest.mark.parametrize(("old", "change", "expected"), TYPE_CHANGES)
def test_a_type_change_rewrites_exactly_when_postgresql_does(
        conn: psycopg.Connection[Any], old: str, change: str, expected: str) -> None:
    try:
        with conn.transaction():
            conn.execute("SET LOCAL TimeZone = 'Europe/Berlin'")
            conn.execute(f"CREATE TABLE t (c {old}); CREATE INDEX t_c ON t (c);"
                         "INSERT INTO t VALUES (NULL)")
            assert predicted(conn, change) == expected
            files = "SELECT pg_relation_filenode('t'), pg_relation_filenode('t_c')"
            before = conn.execute(files).fetchone()
            conn.execute(f"ALTER TABLE t ALTER COLUMN c TYPE {change}")
            after = conn.execute(files).fetchone()
            assert before and after
            actual = ("rewrite" if before[0] != after[0] else
                      "indexes" if before[1] != after[1] else "none")
            assert actual == expected
            raise Rollback
    except Rollback:
        pass


def test_the_write_rate_is_recent_activity_not_the_lifetime_average(
        conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE loaded AS SELECT g AS id FROM generate_series(1, 20000) g")
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")  # the bulk load reaches the counters before the sample starts
    [loaded] = {s.name: s for s in table_stats(conn, ["loaded"], sample_from=0).values()}.values()
    assert loaded.writes_per_second == 0.0  # idle since the load: no writes blocked
    assert table_stats(conn, ["loaded"])["loaded"].writes_per_second is None  # not sampled


def test_the_planner_estimates_the_rows_an_update_touches_without_running_it(
        conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE jobs AS SELECT g AS id, g % 4 AS state FROM generate_series(1, 8000) g")
    conn.execute("ANALYZE jobs")
    most = "UPDATE jobs SET state = 0 WHERE state <> 0"
    some = "DELETE FROM jobs WHERE id <= 100"
    missing = "UPDATE jobs SET later = 1 WHERE id = 1"  # a column an earlier statement adds
    unborn = "UPDATE unborn SET x = 1 WHERE x = 2"  # a table the same run creates
    conn.read_only = True
    try:
        stats = table_stats(conn, ["jobs", "unborn"], planned=[
            ("jobs", most), ("jobs", some), ("jobs", missing), ("unborn", unborn)])
    finally:
        conn.read_only = False
    planned = dict(stats["jobs"].planned)
    assert set(planned) == {most, some}  # what cannot be planned falls back to its shape
    assert 5000 <= planned[most] <= 7000 and 50 <= planned[some] <= 200
    assert "unborn" not in stats
    assert conn.execute("SELECT count(*) FROM jobs WHERE state = 0").fetchone() == (2000,)


def test_the_statistics_carry_the_valid_check_constraints(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE proofs (a int CONSTRAINT a_nn CHECK (a IS NOT NULL), b int)")
    conn.execute("ALTER TABLE proofs ADD CONSTRAINT b_nn CHECK (b IS NOT NULL) NOT VALID")
    [proofs] = {s.name: s for s in table_stats(conn, ["proofs"]).values()}.values()
    assert proofs.checks == ("(a IS NOT NULL)",)  # b_nn is not validated: it proves nothing
    change = migration("ALTER TABLE proofs ALTER COLUMN a SET NOT NULL;\n"
                       "ALTER TABLE proofs ALTER COLUMN b SET NOT NULL;")
    findings = [(f.line, f.rule) for a in analyze(change, checks=known_checks(
        table_stats(conn, ["proofs"]))) for f in a.findings]
    assert findings == [(2, "set-not-null")]


@pytest.mark.parametrize(("check", "proven"), [
    ("at >= '2026-01-01' AND at < '2027-01-01'", False),  # PostgreSQL wants IS NOT NULL too
    ("at IS NOT NULL AND at >= '2026-01-01' AND at < '2027-01-01'", True),
    ("at IS NOT NULL; at >= '2026-01-01' AND at < '2027-01-01'", True),  # two CHECKs together
    ("at IS NOT NULL AND at >= '2026-01-01'::date AND at < '2027-01-01' AND id > 0", True),
    ("at >= '2026-01-01' AND at < '2028-01-01'", False),  # wider than the bound (PG scans)
    ("at > '2025-12-31' AND at < '2027-01-01'", False),  # not how PostgreSQL proves it
    ("at >= '2026-01-01' OR at < '2027-01-01'", False),
])
def test_attach_partition_is_a_scan_exactly_when_postgresql_scans(
        conn: psycopg.Connection[Any], check: str, proven: bool) -> None:
    """PostgreSQL says at DEBUG1 when the partition's constraints spare it the scan."""
    notices: list[str] = []
    conn.add_notice_handler(lambda notice: notices.append(str(notice.message_primary)))
    attach = ("ALTER TABLE events ATTACH PARTITION events_2026 "
              "FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');")
    try:
        with conn.transaction():
            conn.execute("CREATE TABLE events_2026 (id bigint, at date)")
            for number, term in enumerate(check.split(";")):  # one CHECK each
                conn.execute(f"ALTER TABLE events_2026 ADD CONSTRAINT bounds{number} "
                             f"CHECK ({term})")
            stats = table_stats(conn, ["events", "events_2026"])
            [analysis] = analyze(migration(attach), checks=known_checks(stats),
                                 keys=known_keys(stats))
            conn.execute("SET LOCAL client_min_messages = debug1")
            conn.execute(attach)
            conn.execute("SET LOCAL client_min_messages = notice")
            raise Rollback
    except Rollback:
        pass
    implied = any("is implied by existing constraints" in n for n in notices)
    assert implied == proven
    assert analysis.scans == (not proven)
    assert [f.rule for f in analysis.findings] == ([] if proven else ["attach-partition-scans"])
