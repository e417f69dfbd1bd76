"""Statement analysis without a database: locks, rewrites, the hazard rules, suppressions,
estimates from live statistics, and the online rewrites' shape."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pglast
import pytest
from pglast import ast

from dbops.errors import MigrationError
from dbops.migrate import files
from dbops.migrate.analyze import RULES, estimate, lint_text, trusted_parse, with_live_severity
from dbops.migrate.lint import lint
from dbops.migrate.runstate import RunState, run_states
from dbops.migrate.sql import split
from dbops.migrate.strategy import online_steps
from dbops.schema_facts import TableStats

TASKS = TableStats("tasks", 2_000_000, 173 * 1024 * 1024, 2000.0,
                   columns=(("attempt", "integer", ""), ("name", "character varying(100)", "")))


def rules(sql: str) -> list[tuple[int, str]]:
    return [(f.line, f.rule) for a in lint_text(sql) for f in a.findings]


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("CREATE INDEX i ON tasks (status)", "index-not-concurrent"),
        ("DROP INDEX i", "drop-index-not-concurrent"),
        ("REINDEX INDEX i", "reindex-not-concurrent"),
        (
            "ALTER TABLE tasks ADD CONSTRAINT fk FOREIGN KEY (p) REFERENCES pipelines (id)",
            "constraint-not-valid",
        ),
        ("ALTER TABLE tasks ADD CONSTRAINT c CHECK (attempt >= 0)", "constraint-not-valid"),
        ("ALTER TABLE tasks ALTER COLUMN name SET NOT NULL", "set-not-null"),
        ("ALTER TABLE tasks ADD UNIQUE (external_id)", "unique-builds-index"),
        ("ALTER TABLE tasks ADD PRIMARY KEY (id)", "unique-builds-index"),
        ("ALTER TABLE tasks ALTER COLUMN attempt TYPE bigint", "type-change-rewrites"),
        ("ALTER TABLE tasks ADD COLUMN token uuid DEFAULT gen_random_uuid()", "volatile-default"),
        ("ALTER TABLE tasks ADD COLUMN weight int NOT NULL", "not-null-without-default"),
        ("ALTER TABLE tasks RENAME COLUMN name TO title", "rename-breaks-clients"),
        ("ALTER TABLE tasks DROP COLUMN name", "drop-breaks-clients"),
        ("DROP TABLE tasks", "drop-breaks-clients"),
        ("TRUNCATE tasks CASCADE", "truncate-cascade"),
        ("VACUUM FULL tasks", "table-rewrite-lock"),
        ("CLUSTER tasks USING tasks_pkey", "table-rewrite-lock"),
        ("SET lock_timeout = 0", "missing-lock-timeout"),
        ("ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok'", "enum-value-order"),
    ],
)
def test_each_rule_fires_with_its_line(sql: str, rule: str) -> None:
    assert rules(f"SELECT 1;\n{sql};") == [(2, rule)]
    assert RULES[rule].doc and RULES[rule].fix


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON tasks (status)",
        "ALTER TABLE tasks ADD CONSTRAINT c CHECK (attempt >= 0) NOT VALID",
        "ALTER TABLE tasks VALIDATE CONSTRAINT c",
        "ALTER TABLE tasks ADD COLUMN priority smallint NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN seen timestamptz DEFAULT now()",
        "ALTER TABLE tasks ADD CONSTRAINT u UNIQUE USING INDEX u",
        "CREATE TABLE fresh (id int); CREATE INDEX ON fresh (id); ALTER TABLE fresh ADD UNIQUE (id)",
    ],
)
def test_safe_statements_have_no_findings(sql: str) -> None:
    assert [r for _, r in rules(sql) if r != "concurrently-in-transaction"] == []


def test_locks_rewrites_and_scans() -> None:
    [index, fk, retype] = lint_text(
        "CREATE INDEX i ON tasks (status);\n"
        "ALTER TABLE tasks ADD FOREIGN KEY (p) REFERENCES pipelines (id);\n"
        "ALTER TABLE tasks ALTER COLUMN attempt TYPE bigint;"
    )
    assert index.locks == (("tasks", "SHARE"),) and index.scans and not index.rewrites
    assert fk.locks == (("tasks", "SHARE ROW EXCLUSIVE"), ("pipelines", "SHARE ROW EXCLUSIVE"))
    assert retype.strongest_lock == "ACCESS EXCLUSIVE" and retype.rewrites


def test_live_statistics_turn_a_hazard_into_an_estimate() -> None:
    [analysis] = lint_text("CREATE INDEX i ON tasks (status);")
    assert estimate(analysis, {"tasks": TASKS}) == [
        "CREATE INDEX on tasks (2.0M rows, 173 MB, ~2,000 writes/s) holds SHARE for ~3.5s: "
        "blocks writes, about 6.9k writes → CREATE INDEX CONCURRENTLY (outside a transaction)"
    ]


def test_a_hazard_blocking_less_than_max_blocking_is_information() -> None:
    [analysis] = lint_text("CREATE INDEX i ON tasks (status);")
    small = TableStats("tasks", 300, 64 * 1024, 1.0)
    finding = with_live_severity(analysis.findings[0], {"tasks": small})
    assert (finding.severity, finding.lock, finding.blocking_seconds) == ("info", "SHARE", 0.001)
    assert finding.message.endswith("(~1.2ms on 64 kB: under lint.max_blocking 1s)")
    big = with_live_severity(analysis.findings[0], {"tasks": TASKS})
    assert (big.severity, big.blocking_seconds) == ("error", 3.46)
    # 40 MB takes ~0.8 s: information under the default 1 s, the rule's severity under 0.5 s.
    medium = {"tasks": TableStats("tasks", 500_000, 40 * 1024 * 1024, None)}
    assert with_live_severity(analysis.findings[0], medium).severity == "info"
    assert with_live_severity(analysis.findings[0], medium, 0.5).severity == "error"
    # Clients break whatever the size: never a matter of blocking time.
    [drop] = lint_text("ALTER TABLE tasks DROP COLUMN name;")
    assert with_live_severity(drop.findings[0], {"tasks": small}).severity == "warning"


def test_the_plan_setting_max_blocking_decides_refusals(tmp_path: Path) -> None:
    change = numbered(tmp_path, 1, "ALTER TABLE tasks ALTER COLUMN attempt TYPE bigint;")
    medium = {"tasks": TableStats("tasks", 500_000, 40 * 1024 * 1024, 12.0)}
    assert online_steps(change, run_states([change], medium)[0])
    with pytest.raises(MigrationError, match="type-change-rewrites"):
        online_steps(change, run_states([change], medium, max_blocking=0.5)[0])
    report = lint([change], zero_downtime=True, fail_on="error", stats=medium, max_blocking=0.5)
    assert [f.severity for f in report.findings] == ["error"]


def migration(tmp_path: Path, body: str, header: str = "") -> files.Migration:
    path = tmp_path / "20250101000001_m.sql"
    path.write_text(f"-- m\n{header}\n-- migrate:up\n{body}\n")
    return files.parse(path)


def test_suppression_needs_a_reason_and_silences(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="dbops:ignore needs a rule id and a reason"):
        migration(tmp_path, "DROP TABLE tasks;", "-- dbops:ignore drop-breaks-clients")
    m = migration(
        tmp_path, "DROP TABLE tasks;", "-- dbops:ignore drop-breaks-clients retired in release 42"
    )
    report = lint([m], zero_downtime=True, fail_on="warning")
    assert [f.suppressed for f in report.findings] == ["retired in release 42"]
    assert report.failing() == []


def test_unknown_rule_in_an_ignore_is_an_error(tmp_path: Path) -> None:
    m = migration(tmp_path, "SELECT 1;", "-- dbops:ignore no-such-rule because")
    report = lint([m], zero_downtime=True, fail_on="error")
    assert report.failing()[0].rule == "unknown-rule"


def test_fail_on_thresholds(tmp_path: Path) -> None:
    m = migration(tmp_path, "DROP INDEX i;")  # a warning
    assert lint([m], zero_downtime=False, fail_on="error").failing() == []
    assert len(lint([m], zero_downtime=False, fail_on="warning").failing()) == 1
    assert lint([m], zero_downtime=False, fail_on="never").failing() == []


def test_zero_downtime_makes_rewritable_hazards_information(tmp_path: Path) -> None:
    m = migration(tmp_path, "CREATE INDEX i ON tasks (status);")
    assert lint([m], zero_downtime=False, fail_on="error").failing()
    report = lint([m], zero_downtime=True, fail_on="error")
    assert report.failing() == []
    assert report.findings[0].message.endswith("(zero-downtime: run online instead)")


def test_what_cannot_be_made_safe_is_refused_with_the_recipe(tmp_path: Path) -> None:
    m = migration(tmp_path, "ALTER TABLE tasks ALTER COLUMN attempt TYPE bigint;")
    with pytest.raises(MigrationError) as caught:
        online_steps(m)
    assert "type-change-rewrites" in str(caught.value)
    assert "Instead: add a new column, backfill in batches" in str(caught.value)
    allowed = migration(
        tmp_path,
        "ALTER TABLE tasks ALTER COLUMN attempt TYPE bigint;",
        "-- dbops:ignore type-change-rewrites tasks is tiny in this product",
    )
    assert len(online_steps(allowed)) == 1


def test_online_steps_shape(tmp_path: Path) -> None:
    m = migration(
        tmp_path,
        "CREATE INDEX ON tasks (status);\n"
        "ALTER TABLE tasks ALTER COLUMN name SET NOT NULL;\n"
        "ALTER TABLE tasks ADD UNIQUE (external_id);",
    )
    steps = online_steps(m)
    texts = [[s.text for s in step.statements] for step in steps]
    assert texts == [
        ["CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_status_idx ON tasks (status)"],
        [
            'ALTER TABLE "tasks" ADD CONSTRAINT "tasks_name_not_null" CHECK ("name" IS NOT NULL) '
            "NOT VALID"
        ],
        ['ALTER TABLE "tasks" VALIDATE CONSTRAINT "tasks_name_not_null"'],
        [
            'ALTER TABLE "tasks" ALTER COLUMN "name" SET NOT NULL',
            'ALTER TABLE "tasks" DROP CONSTRAINT "tasks_name_not_null"',
        ],
        [
            'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "tasks_external_id_key" ON "tasks" '
            '("external_id")'
        ],
        [
            'ALTER TABLE "tasks" ADD CONSTRAINT "tasks_external_id_key" UNIQUE USING INDEX '
            '"tasks_external_id_key"'
        ],
    ]
    assert [s.transactional for s in steps] == [False, True, True, True, False, True]


def numbered(tmp_path: Path, n: int, body: str) -> files.Migration:
    path = tmp_path / f"2025010100000{n}_m{n}.sql"
    path.write_text(f"-- m{n}\n-- migrate:up\n{body}\n")
    return files.parse(path)


def test_a_run_judges_each_migration_against_what_the_earlier_ones_leave(tmp_path: Path) -> None:
    run = [numbered(tmp_path, 1, "CREATE TABLE packages (id int, downloads int);"),
           numbered(tmp_path, 2, "ALTER TABLE packages RENAME TO crates;"),
           numbered(tmp_path, 3, "ALTER TABLE crates ALTER COLUMN downloads TYPE bigint;\n"
                                 "CREATE INDEX ON crates (downloads);"),
           numbered(tmp_path, 4, "DROP TABLE crates;"),
           numbered(tmp_path, 5, "ALTER TABLE tasks ALTER COLUMN attempt TYPE bigint;")]
    states = run_states(run, {})  # a fresh database: statistics read, none found
    assert [sorted(s.new) for s in states] == [[], ["packages"], ["crates"], ["crates"], []]
    report = lint(run, zero_downtime=False, fail_on="error", states=states)
    assert [(f.file[-6:], f.rule) for f in report.findings] == [("m5.sql", "type-change-rewrites")]
    assert [s.note for s in online_steps(run[2], states[2])] == [""]  # as written, no rewrite
    with pytest.raises(MigrationError) as caught:
        online_steps(run[4], states[4])
    assert "(tasks is neither in the live statistics nor created earlier in this run: assumed " \
        "large and busy); it cannot run online" in str(caught.value)
    with pytest.raises(MigrationError, match=r"\(no live statistics were read: tasks is assumed "):
        online_steps(run[4], run_states(run)[4])
    with pytest.raises(MigrationError, match="type-change-rewrites"):
        online_steps(run[2], RunState())  # judged alone, as before: crates may be large


def test_an_empty_table_has_no_lock_hazard_and_a_refusal_names_its_estimate(
    tmp_path: Path,
) -> None:
    change = numbered(tmp_path, 1, "ALTER TABLE tasks ALTER COLUMN attempt TYPE bigint;")
    empty = {"tasks": TableStats("tasks", 0, 16 * 1024, 0.0)}
    assert online_steps(change, run_states([change], empty)[0])  # no hazard: nothing to refuse
    assert lint([change], zero_downtime=True, fail_on="error", stats=empty).findings == ()
    drop = numbered(tmp_path, 2, "ALTER TABLE tasks DROP COLUMN attempt;")  # its clients break
    assert [f.rule for f in lint([drop], zero_downtime=True, fail_on="error",
                                 stats=empty).findings] == ["drop-breaks-clients"]
    refused = lint([change], zero_downtime=True, fail_on="error", stats={"tasks": TASKS})
    assert refused.findings[0].message == (
        "changing the type of tasks.attempt rewrites the table: int4 → int8 converts every row "
        "(zero-downtime refuses it, tasks "
        "per the live statistics: 2.0M rows, 173 MB, ~2,000 writes/s, ~3.5s to scan: add a new "
        "column, backfill in batches, switch readers, then drop the old column)")
    with pytest.raises(MigrationError, match=r"\(tasks per the live statistics: 2.0M rows"):
        online_steps(change, run_states([change], {"tasks": TASKS})[0])


def test_an_update_with_a_where_clause_is_judged_by_the_planner_s_estimate(
        tmp_path: Path) -> None:
    most = "UPDATE tasks SET attempt = 0 WHERE attempt IS NULL"
    batch = "UPDATE tasks SET attempt = 0 WHERE id BETWEEN 1 AND 1000"
    change = numbered(tmp_path, 1, f"{most};\n{batch};\nDELETE FROM tasks WHERE name = 'x';")
    # Offline, or without an estimate (EXPLAIN failed): judged by its shape, as before.
    assert lint([change], zero_downtime=False, fail_on="error").findings == ()
    assert lint([change], zero_downtime=False, fail_on="error",
                stats={"tasks": TASKS}).findings == ()
    planned = replace(TASKS, planned=((most, 1_500_000.0), (batch, 1000.0)))
    report = lint([change], zero_downtime=False, fail_on="error", stats={"tasks": planned})
    [big, small] = report.findings
    assert (big.rule, big.severity, big.rows, big.line) == ("update-whole-table", "error",
                                                            1_500_000.0, 3)
    assert "~1.5M rows of tasks (the planner's estimate)" in big.message
    assert RULES["update-whole-table"].fix in big.message  # the batched-backfill recipe
    # Three quarters of 173 MB, each row written again: ten times the cost of reading it.
    assert big.blocking_seconds == pytest.approx(0.75 * 173 / 50 * 10, rel=0.01)
    assert (small.severity, small.rows) == ("info", 1000.0)
    assert "under lint.max_blocking" in small.message
    # Zero-downtime refuses what no rewrite makes safe, judged by the same estimate.
    with pytest.raises(MigrationError, match="update-whole-table"):
        online_steps(change, run_states([change], {"tasks": planned})[0])


def test_a_lock_table_costs_what_the_transaction_writes_while_it_holds_it(
        tmp_path: Path) -> None:
    update = "UPDATE tasks SET attempt = 0 WHERE attempt IS NULL"
    locked = numbered(tmp_path, 1, f"LOCK TABLE tasks IN EXCLUSIVE MODE;\n{update};")
    brief = {"tasks": TASKS}
    [lock] = lint([locked], zero_downtime=False, fail_on="error", stats=brief).findings
    assert (lock.rule, lock.severity) == ("lock-table", "info")  # held for milliseconds
    for rows, severity in ((300_000.0, "error"), (1000.0, "info")):
        stats = {"tasks": replace(TASKS, planned=((update, rows),))}
        found = {f.rule: f for f in lint([locked], zero_downtime=False, fail_on="error",
                                         stats=stats).findings}
        assert (found["lock-table"].severity, found["lock-table"].rows) == (severity, rows)
        assert f"writes ~{'300.0k' if rows > 1000 else '1.0k'} rows" in found["lock-table"].message
    # Outside a transaction each statement commits alone: nothing holds the lock.
    path = tmp_path / "20250101000002_alone.sql"
    path.write_text(f"-- dbops:transaction off\n-- migrate:up\nLOCK TABLE tasks;\n{update};\n")
    alone = files.parse(path)
    stats = {"tasks": replace(TASKS, planned=((update, 300_000.0),))}
    found = {f.rule: f for f in lint([alone], zero_downtime=False, fail_on="error",
                                     stats=stats).findings}
    assert found["lock-table"].rows is None


def test_set_not_null_proven_by_a_valid_check_needs_no_scan(tmp_path: Path) -> None:
    change = numbered(tmp_path, 1, "ALTER TABLE tasks ALTER COLUMN name SET NOT NULL;")
    for checks, rules_found in (
            ((), ["set-not-null"]),
            (("(name IS NOT NULL)",), []),
            (("((attempt >= 0) AND (name IS NOT NULL))",), []),  # one term of an AND
            (("(attempt IS NOT NULL)",), ["set-not-null"]),  # another column
            (("((name IS NOT NULL) OR (attempt > 0))",), ["set-not-null"])):  # proves nothing
        stats = {"tasks": replace(TASKS, checks=checks)}
        report = lint([change], zero_downtime=False, fail_on="error", stats=stats)
        assert [f.rule for f in report.findings] == rules_found, checks
    [analysis] = lint_text("ALTER TABLE tasks ALTER COLUMN name SET NOT NULL;")
    assert (analysis.scans, analysis.strongest_lock) == (True, "ACCESS EXCLUSIVE")


def test_attach_partition_proven_by_a_valid_check_is_neither_flagged_nor_refused(
        tmp_path: Path) -> None:
    change = numbered(tmp_path, 1, "ALTER TABLE events ATTACH PARTITION events_2025 "
                                   "FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');")
    part = TableStats("events_2025", 2_000_000, 173 * 1024 * 1024, 10.0)
    proof = "((at IS NOT NULL) AND (at >= '2025-01-01'::date) AND (at < '2026-01-01'::date))"
    keyed = TableStats("events", 0, 8192, None, partition_key=("at",))
    for stats, refused in (
            ({"events": keyed, "events_2025": replace(part, checks=(proof,))}, False),
            ({"events": keyed, "events_2025": part}, True),  # no CHECK
            # No key known (a default partition, an expression key): no proof.
            ({"events": replace(keyed, partition_key=()),
              "events_2025": replace(part, checks=(proof,))}, True)):
        report = lint([change], zero_downtime=False, fail_on="error", stats=stats)
        assert [f.rule for f in report.findings] == (["attach-partition-scans"] if refused
                                                     else [])
        if refused:
            with pytest.raises(MigrationError, match="attach-partition-scans"):
                online_steps(change, run_states([change], stats)[0])
        else:
            assert online_steps(change, run_states([change], stats)[0])


def test_indexes_and_materialized_views_made_earlier_in_the_run_are_new(tmp_path: Path) -> None:
    """An index of a table the run created, and a materialized view the run created, need no
    online care later in the run: a transactional migration stays one transaction."""
    run = [numbered(tmp_path, 1, "CREATE TABLE crates (id int, name text);"),
           numbered(tmp_path, 2, "CREATE INDEX crates_name ON crates (name);"
                                 " CREATE MATERIALIZED VIEW recent AS SELECT id FROM crates;"),
           numbered(tmp_path, 3, "ALTER INDEX crates_name RENAME TO crates_by_name;"
                                 " CREATE UNIQUE INDEX recent_id ON recent (id);"),
           numbered(tmp_path, 4, "DROP INDEX crates_by_name; DROP INDEX recent_id;"
                                 " DROP INDEX live_index;")]
    states = run_states(run, {})
    assert sorted(states[2].new) == ["crates", "crates_name", "recent"]
    assert sorted(states[3].new) == ["crates", "crates_by_name", "recent", "recent_id"]
    report = lint(run, zero_downtime=True, fail_on="error", states=states)
    # Only the index the run did not make (it may be live and large) is judged.
    assert [(f.line, f.rule) for f in report.findings] == [(3, "drop-index-not-concurrent")]
    steps = online_steps(run[3], states[3])
    assert [(len(s.statements), s.transactional, s.note) for s in steps] == [
        (2, True, ""), (1, False, "DROP INDEX CONCURRENTLY")]
    assert online_steps(run[2], states[2])[0].transactional  # as written: one transaction


def test_trusted_parse_builds_the_trees_pglast_builds_and_keeps_its_check():
    """The parse without pglast's per-attribute check gives equal trees for every statement of
    the lint corpus and the real history, and leaves the check in place for nodes built by hand."""
    root = Path(__file__).parent
    history = files.load(root / "histories" / "crates_io" / "migrations")
    texts = [s.text for m in history for s in m.up.statements(m.path)]
    texts += [s.text for case in sorted((root / "lint_corpus" / "cases").glob("*.sql"))
              for s in split(case.read_text())]
    assert len(texts) > 700
    for text, fast in zip(texts, trusted_parse(texts), strict=True):
        checked = pglast.parse_sql(text)[0].stmt
        assert fast == checked and fast() == checked(), text
    with pytest.raises(ValueError, match="Bad value"):
        ast.RangeVar().relname = 42


def test_a_statement_is_terminated_past_its_trailing_comment() -> None:
    last, = split("COMMENT ON TABLE t IS 'a--b'\n-- later: DROP TABLE t;\n")
    assert last.terminated.endswith("\n;")
    assert split("CREATE TABLE t (id int);")[0].terminated == "CREATE TABLE t (id int);"
