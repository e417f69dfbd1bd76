"""The lint rule book as data: each rule's default severity, the lock PostgreSQL takes for the
statement it flags (checked against `pg_locks` by the tests), how its cost grows, what goes wrong
and the safe recipe. `docs/rules/<id>.md` explains each one at length. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER: dict[Severity, int] = {"info": 0, "warning": 1, "error": 2}

# How a finding's cost grows: "table" with the table's size (a scan, a rewrite, an index build,
# rows changed), "brief" not at all (a catalog change: the lock is held for milliseconds once
# granted), "clients" is no lock hazard at all (clients break, data goes, the statement fails),
# "none" for findings about the migration itself.
Cost = Literal["table", "brief", "clients", "none"]

RULE_BOOK = "docs/rules"


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    lock: str  # the lock mode the flagged statement takes on its table ("" when none)
    cost: Cost
    doc: str
    fix: str
    example: str = ""  # a statement it flags, on the rule book's example schema ("" for none)

    @property
    def url(self) -> str:
        return f"{RULE_BOOK}/{self.id}.md"


RULES: dict[str, Rule] = {r.id: r for r in (
    Rule("index-not-concurrent", "error", "SHARE", "table",
         "CREATE INDEX holds SHARE on the table for the whole build: every write waits.",
         "CREATE INDEX CONCURRENTLY (outside a transaction)",
         "CREATE INDEX tasks_name_idx ON tasks (name)"),
    Rule("drop-index-not-concurrent", "warning", "ACCESS EXCLUSIVE", "brief",
         "DROP INDEX takes ACCESS EXCLUSIVE on the table and the index: reads and writes wait.",
         "DROP INDEX CONCURRENTLY", "DROP INDEX tasks_status_idx"),
    Rule("reindex-not-concurrent", "error", "SHARE", "table",
         "REINDEX holds SHARE on the table (writes wait) and ACCESS EXCLUSIVE on each index it "
         "rebuilds (reads using it wait) until the rebuild ends.",
         "REINDEX (CONCURRENTLY) ...", "REINDEX TABLE tasks"),
    Rule("constraint-not-valid", "error", "SHARE ROW EXCLUSIVE", "table",
         "Adding a FOREIGN KEY (SHARE ROW EXCLUSIVE on both tables) or a CHECK (ACCESS "
         "EXCLUSIVE) validates every row while writes wait.",
         "ADD ... NOT VALID, then VALIDATE CONSTRAINT in its own transaction",
         "ALTER TABLE tasks ADD FOREIGN KEY (pipeline_id) REFERENCES pipelines (id)"),
    Rule("set-not-null", "error", "ACCESS EXCLUSIVE", "table",
         "SET NOT NULL scans the whole table under ACCESS EXCLUSIVE, unless a valid CHECK "
         "(col IS NOT NULL) proves it (PostgreSQL 12+; lint sees the CHECK in the live "
         "statistics).",
         "ADD CHECK (col IS NOT NULL) NOT VALID, VALIDATE, SET NOT NULL, drop the check",
         "ALTER TABLE tasks ALTER COLUMN name SET NOT NULL"),
    Rule("unique-builds-index", "error", "ACCESS EXCLUSIVE", "table",
         "ADD UNIQUE / PRIMARY KEY builds its index under ACCESS EXCLUSIVE.",
         "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX",
         "ALTER TABLE tasks ADD UNIQUE (external_id)"),
    Rule("exclude-builds-index", "error", "ACCESS EXCLUSIVE", "table",
         "ADD EXCLUDE builds its index and checks every row under ACCESS EXCLUSIVE; an exclusion "
         "constraint cannot be attached to an index built concurrently.",
         "create the table with the constraint, or accept the lock on a small table",
         "ALTER TABLE tasks ADD EXCLUDE USING btree (external_id WITH =)"),
    Rule("type-change-rewrites", "error", "ACCESS EXCLUSIVE", "table",
         "ALTER COLUMN TYPE to a type that is not binary-coercible (or narrower, or with a USING "
         "expression that computes) rewrites the table and its indexes under ACCESS EXCLUSIVE.",
         "add a new column, backfill in batches, switch readers, then drop the old column",
         "ALTER TABLE tasks ALTER COLUMN attempt TYPE bigint"),
    Rule("type-change-rebuilds-indexes", "error", "ACCESS EXCLUSIVE", "table",
         "ALTER COLUMN TYPE that keeps the rows (no rewrite) but changes the collation or the "
         "operator class rebuilds every index on the column under ACCESS EXCLUSIVE.",
         "build the new index CONCURRENTLY on a new column, or accept it on a small table",
         'ALTER TABLE tasks ALTER COLUMN status TYPE text COLLATE "C"'),
    Rule("volatile-default", "error", "ACCESS EXCLUSIVE", "table",
         "ADD COLUMN with a volatile DEFAULT rewrites the whole table under ACCESS EXCLUSIVE.",
         "add the column without a default (or a constant one), then backfill in batches",
         "ALTER TABLE tasks ADD COLUMN token uuid DEFAULT gen_random_uuid()"),
    Rule("generated-column-rewrites", "error", "ACCESS EXCLUSIVE", "table",
         "ADD COLUMN ... GENERATED ALWAYS AS (...) STORED computes the value for every row: the "
         "table is rewritten under ACCESS EXCLUSIVE.",
         "add a plain column, fill it with a trigger and a batched backfill",
         "ALTER TABLE tasks ADD COLUMN attempt2 int GENERATED ALWAYS AS (attempt * 2) STORED"),
    Rule("set-tablespace-rewrites", "error", "ACCESS EXCLUSIVE", "table",
         "SET TABLESPACE copies the table's files under ACCESS EXCLUSIVE.",
         "pg_repack --tablespace, or a new table filled in batches",
         "ALTER TABLE tasks SET TABLESPACE pg_default"),
    Rule("set-logged-rewrites", "error", "ACCESS EXCLUSIVE", "table",
         "SET LOGGED / SET UNLOGGED rewrites the table (and WAL-logs all of it for LOGGED) under "
         "ACCESS EXCLUSIVE.",
         "create the table logged from the start; otherwise accept it in a maintenance window",
         "ALTER TABLE tasks SET UNLOGGED"),
    Rule("not-null-without-default", "error", "ACCESS EXCLUSIVE", "clients",
         "ADD COLUMN ... NOT NULL without a DEFAULT fails on any table that has rows.",
         "add it with a constant DEFAULT, or nullable, backfill, then SET NOT NULL online",
         "ALTER TABLE tasks ADD COLUMN weight int NOT NULL"),
    Rule("rename-breaks-clients", "warning", "ACCESS EXCLUSIVE", "clients",
         "Renaming a table or column breaks every running client that still uses the old name.",
         "add the new name alongside (a view or a new column), migrate clients, drop the old",
         "ALTER TABLE tasks RENAME COLUMN name TO title"),
    Rule("drop-breaks-clients", "warning", "ACCESS EXCLUSIVE", "clients",
         "Dropping a table or column breaks clients that still use it, and loses its data.",
         "stop using it in the application first; drop in a later release",
         "ALTER TABLE tasks DROP COLUMN note"),
    Rule("drop-cascade", "error", "ACCESS EXCLUSIVE", "clients",
         "DROP ... CASCADE also drops every object that depends on this one (views, foreign "
         "keys, ...), each under ACCESS EXCLUSIVE: more goes than the statement names.",
         "drop the dependent objects by name first, then drop without CASCADE",
         "DROP VIEW task_names CASCADE"),
    Rule("truncate-cascade", "error", "ACCESS EXCLUSIVE", "clients",
         "TRUNCATE ... CASCADE empties every table that references this one.",
         "delete the rows you mean to, in batches", "TRUNCATE pipelines CASCADE"),
    Rule("table-rewrite-lock", "error", "ACCESS EXCLUSIVE", "table",
         "VACUUM FULL and CLUSTER rewrite the table under ACCESS EXCLUSIVE.",
         "pg_repack, or plain VACUUM", "CLUSTER tasks USING tasks_pkey"),
    Rule("refresh-not-concurrent", "error", "ACCESS EXCLUSIVE", "table",
         "REFRESH MATERIALIZED VIEW without CONCURRENTLY recomputes the view under ACCESS "
         "EXCLUSIVE: every read of it waits.",
         "REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index on the view)",
         "REFRESH MATERIALIZED VIEW task_counts"),
    Rule("lock-table", "error", "ACCESS EXCLUSIVE", "brief",
         "LOCK TABLE takes the lock it names (ACCESS EXCLUSIVE by default) and holds it to the "
         "end of the migration's transaction: while a later UPDATE or DELETE of the table writes "
         "the rows the planner estimates, the lock costs what they cost.",
         "drop the explicit lock; let each statement take the lock it needs",
         "LOCK TABLE tasks"),
    Rule("trigger-blocks-writes", "warning", "SHARE ROW EXCLUSIVE", "brief",
         "CREATE TRIGGER and ENABLE/DISABLE TRIGGER take SHARE ROW EXCLUSIVE: writes wait while "
         "it is queued and held.",
         "keep lock_timeout short and retry; create triggers on a quiet table",
         "CREATE TRIGGER tasks_audit AFTER INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION touch()"),
    Rule("attach-partition-scans", "error", "ACCESS EXCLUSIVE", "table",
         "ATTACH PARTITION scans the new partition under ACCESS EXCLUSIVE (SHARE UPDATE "
         "EXCLUSIVE on the parent) to prove its rows fit the bounds, unless a valid CHECK "
         "constraint already proves it.",
         "ADD a CHECK matching the bounds NOT VALID, VALIDATE it, then ATTACH PARTITION",
         "ALTER TABLE events ATTACH PARTITION events_2025 "
         "FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')"),
    Rule("detach-partition-not-concurrent", "error", "ACCESS EXCLUSIVE", "brief",
         "DETACH PARTITION without CONCURRENTLY takes ACCESS EXCLUSIVE on the parent: every "
         "query of the partitioned table waits.",
         "DETACH PARTITION ... CONCURRENTLY (outside a transaction)",
         "ALTER TABLE events DETACH PARTITION events_2024"),
    Rule("alter-sequence", "warning", "SHARE ROW EXCLUSIVE", "brief",
         "ALTER SEQUENCE takes SHARE ROW EXCLUSIVE on the sequence: nextval() waits, so inserts "
         "that use it wait too.",
         "keep lock_timeout short; prefer setval() for a restart value",
         "ALTER SEQUENCE task_seq RESTART WITH 100"),
    Rule("update-whole-table", "error", "ROW EXCLUSIVE", "table",
         "UPDATE or DELETE without a WHERE touches every row in one transaction: each row stays "
         "locked until it commits, the WAL (and replica lag) grows with the table. With live "
         "statistics, one with a WHERE clause is judged by the rows the planner estimates it "
         "touches (EXPLAIN, never run), each written again at ten times the cost of reading it.",
         "batched backfill: UPDATE ... WHERE id BETWEEN a AND b, one batch per transaction",
         "UPDATE tasks SET attempt = 0"),
    Rule("missing-lock-timeout", "error", "", "none",
         "Without a lock_timeout, a statement waiting for its lock queues every later query.",
         "keep dbops' lock_timeout (plan: migrations.lock_timeout); do not set it to 0"),
    Rule("concurrently-in-transaction", "info", "", "none",
         "CONCURRENTLY cannot run in a transaction block; dbops runs it as a journaled step.",
         "nothing to do: dbops splits the migration into steps"),
    Rule("not-idempotent-outside-transaction", "warning", "", "none",
         "A statement outside a transaction is re-run after a crash; without IF [NOT] EXISTS it "
         "fails.", "add IF NOT EXISTS / IF EXISTS"),
    Rule("empty-migration", "info", "", "none",
         "The up section has no statements: the migration is recorded in the history and "
         "changes nothing (a placeholder, say for another database, or a change reverted since).",
         "nothing to do"),
    Rule("enum-value-order", "warning", "", "none",
         "ALTER TYPE ... ADD VALUE BEFORE/AFTER changes the enum's sort order; the new value "
         "cannot be used in the same transaction.",
         "add values at the end, in their own migration"),
    Rule("enum-value-in-transaction", "warning", "", "none",
         "ALTER TYPE ... ADD VALUE in a transaction: the new value cannot be used until it "
         "commits, so a later statement of the same migration that uses it fails.",
         "add the value in its own migration ('-- dbops:transaction off' or alone)"),
    Rule("unknown-rule", "error", "", "none",
         "A '-- dbops:ignore' names a rule that does not exist (a typo silences nothing).",
         "use one of the rule ids of this book"),
)}


def page(rule: Rule) -> str:
    """The rule book's page for `rule` (docs/rules/<id>.md), in Markdown."""
    lock = (f"`{rule.lock}` on the table the statement names (the tests check it against "
            "`pg_locks` on a real server)." if rule.lock else "None: this rule is about the "
            "migration itself, not a lock.")
    cost = {"table": "The time grows with the table: a scan, a rewrite or an index build holds "
                     "the lock while it works through every row. Below `lint.max_blocking` "
                     "(plan setting, default 1s) of estimated blocking time on the live table "
                     "the finding is `info` and never refuses the migration.",
            "brief": "The lock is held briefly once granted, but while it waits in the lock "
                     "queue every later query of the table waits behind it. dbops' "
                     "`lock_timeout` and retries bound that wait; with live statistics the "
                     "finding is `info`.",
            "clients": "Not a matter of size: running clients break, data goes, or the statement "
                       "fails, whatever the table holds.",
            "none": "Not a lock hazard."}[rule.cost]
    example = f"\n## Example\n\n```sql\n{rule.example};\n```\n" if rule.example else ""
    return (f"# {rule.id}\n\nDefault severity: **{rule.severity}**\n\n## What\n\n{rule.doc}\n\n"
            f"## The lock\n\n{lock}\n\n## Why it hurts\n\n{cost}\n{example}\n"
            f"## Safe recipe\n\n{rule.fix}.\n\n## Suppress\n\nWhen you know it is safe here, "
            f"say why in the migration file:\n\n```sql\n-- dbops:ignore {rule.id} <reason>\n```\n\n"
            "The finding is then reported as `ignored` with your reason, and never fails lint.\n")
