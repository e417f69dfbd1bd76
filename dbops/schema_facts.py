"""What PostgreSQL's catalogs say about the user's tables and schema, read over a connection the
caller opens: each table's statistics for the migration analysis (TableStats), the planner's row
estimates, and the schema fingerprint that tells whether a schema changed. Read-only; imported by
inspect, the migration engine, the ledger and the pipeline, so it imports nothing of theirs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg

# A definition per user object; equal definitions hash equal, whatever the catalog's OIDs.
_FINGERPRINT = """
    WITH user_ns AS (
        SELECT oid, nspname FROM pg_namespace
        WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'dbops')
          AND nspname !~ '^pg_(toast|temp)'),
    extension_objects AS (SELECT objid FROM pg_depend WHERE deptype = 'e')
    SELECT 'table.' || n.nspname || '.' || c.relname,
           md5(string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                          || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                          || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''),
                          ', ' ORDER BY a.attnum))
    FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
    WHERE c.relkind IN ('r', 'p') AND c.oid NOT IN (SELECT objid FROM extension_objects)
    GROUP BY n.nspname, c.relname
    UNION ALL
    SELECT 'index.' || n.nspname || '.' || c.relname,
           md5(pg_get_indexdef(c.oid) || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN user_ns n ON n.oid = c.relnamespace
    UNION ALL
    SELECT 'constraint.' || n.nspname || '.' || t.relname || '.' || con.conname,
           md5(pg_get_constraintdef(con.oid))
    FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid
    JOIN user_ns n ON n.oid = t.relnamespace
    UNION ALL
    SELECT 'view.' || n.nspname || '.' || c.relname, md5(pg_get_viewdef(c.oid))
    FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('v', 'm') AND c.oid NOT IN (SELECT objid FROM extension_objects)
    UNION ALL
    SELECT 'function.' || n.nspname || '.' || p.proname
           || '(' || pg_get_function_identity_arguments(p.oid) || ')',
           md5(pg_get_functiondef(p.oid))
    FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
    WHERE p.prokind IN ('f', 'p') AND p.oid NOT IN (SELECT objid FROM extension_objects)"""


@dataclass(frozen=True)
class TableStats:
    """Live statistics of one table, for turning a migration hazard into an estimate."""

    name: str
    rows: float
    bytes: int
    writes_per_second: float | None  # recent writes/s; None: not sampled
    long_transactions: tuple[str, ...] = ()
    columns: tuple[tuple[str, str, str], ...] = ()  # (name, format_type, collation or "")
    # (statement text, rows): the planner's estimate of the rows an UPDATE or DELETE of this
    # table with a WHERE clause touches (EXPLAIN, never run).
    planned: tuple[tuple[str, float], ...] = ()
    # The expressions of the table's valid CHECK constraints, as PostgreSQL prints them: what
    # they prove lets PostgreSQL skip a scan (SET NOT NULL, ATTACH PARTITION).
    checks: tuple[str, ...] = ()
    # A range-partitioned table's key columns, when it has no default partition (ATTACH
    # PARTITION would scan that one too) and no expression in its key: () for any other table.
    partition_key: tuple[str, ...] = ()


# Anything a migration could lock, rewrite or fail on, outside the system schemas and dbops' own.
_HAS_OBJECTS = r"""
    WITH ours AS (SELECT oid FROM pg_namespace
                  WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'dbops')
                    AND nspname NOT LIKE 'pg\_%')
    SELECT EXISTS (SELECT FROM pg_class WHERE relnamespace IN (SELECT oid FROM ours))
        OR EXISTS (SELECT FROM pg_proc WHERE pronamespace IN (SELECT oid FROM ours))
        OR EXISTS (SELECT FROM pg_type WHERE typnamespace IN (SELECT oid FROM ours))"""


def has_objects(conn: psycopg.Connection[Any]) -> bool:
    """Whether the database holds anything a migration could lock, rewrite or fail on."""
    row = conn.execute(_HAS_OBJECTS).fetchone()
    return bool(row and row[0])


def schema_fingerprint(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Every user table, index, constraint, view and function, with a hash of its definition."""
    return dict(conn.execute(_FINGERPRINT).fetchall())


_TABLE_STATS = """
    SELECT c.relname, n.nspname,
           (CASE WHEN c.reltuples < 0 THEN coalesce(s.n_live_tup, 0) ELSE c.reltuples END)::float8,
           pg_total_relation_size(c.oid)::bigint,
           coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0)::float8,
           coalesce((SELECT array_agg(ARRAY[a.attname::text, format_type(a.atttypid, a.atttypmod),
                                            coalesce(co.collname::text, '')] ORDER BY a.attnum)
                     FROM pg_attribute a LEFT JOIN pg_collation co ON co.oid = a.attcollation
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
                    '{}'),
           coalesce((SELECT array_agg(pg_get_expr(k.conbin, k.conrelid) ORDER BY k.conname)
                     FROM pg_constraint k
                     WHERE k.conrelid = c.oid AND k.contype = 'c' AND k.convalidated), '{}'),
           coalesce((SELECT array_agg(a.attname::text ORDER BY k.n)
                     FROM pg_partitioned_table p
                     CROSS JOIN LATERAL unnest(p.partattrs::int2[]) WITH ORDINALITY k(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = k.attnum
                     WHERE p.partrelid = c.oid AND p.partstrat = 'r' AND p.partdefid = 0
                       AND 0 <> ALL (p.partattrs::int2[])), '{}'),
           coalesce((SELECT array_agg(DISTINCT 'pid ' || a.pid || ' (' || coalesce(nullif(
                         a.application_name, ''), 'no application_name') || '), in a transaction for '
                         || date_trunc('second', now() - a.xact_start))
                     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                     WHERE l.relation = c.oid AND l.granted AND a.pid <> pg_backend_pid()
                       AND now() - a.xact_start > interval '5 seconds'), '{}')
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
    WHERE c.oid IN (SELECT to_regclass(t) FROM unnest(%s::text[]) t WHERE to_regclass(t) IS NOT NULL)"""


_WRITES = """
    SELECT n.nspname || '.' || c.relname, coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
    WHERE c.oid IN (SELECT to_regclass(t) FROM unnest(%s::text[]) t WHERE to_regclass(t) IS NOT NULL)"""


WRITE_SAMPLE_SECONDS = 1.0  # backends report their counters about once a second


def table_stats(conn: psycopg.Connection[Any], tables: list[str], *,
                sample_from: int | None = None,
                planned: Sequence[tuple[str, str]] = ()) -> dict[str, TableStats]:
    """Row estimates, sizes, column types and long lock holders of these tables, and, when one
    of them holds at least `sample_from` bytes, their recent write rate: the change of the
    activity counters over WRITE_SAMPLE_SECONDS (the lifetime average misrepresents a table
    bulk-loaded once and idle since). Smaller tables are not worth the wait: no rate. For each
    (table, statement) of `planned` (an UPDATE or DELETE with a WHERE clause), the planner's
    estimate of the rows it touches."""
    rows_read = conn.execute(_TABLE_STATS, (tables,)).fetchall()
    rates: dict[str, float] = {}
    sample = WRITE_SAMPLE_SECONDS
    if sample_from is not None and any(int(row[3]) >= sample_from for row in rows_read):
        before = {str(k): float(v) for k, v in conn.execute(_WRITES, (tables,))}
        started = time.monotonic()
        time.sleep(sample)
        conn.execute("SELECT pg_stat_clear_snapshot()")  # a transaction caches the counters
        after = {str(k): float(v) for k, v in conn.execute(_WRITES, (tables,))}
        elapsed = time.monotonic() - started
        rates = {k: max(after.get(k, v) - v, 0.0) / elapsed for k, v in before.items()}
    stats: dict[str, TableStats] = {}
    for name, schema, rows, size, _, columns, checks, key, holders in rows_read:
        entry = TableStats(str(name), float(rows), int(size), rates.get(f"{schema}.{name}"),
                           tuple(holders), tuple((c[0], c[1], c[2]) for c in columns),
                           checks=tuple(str(check) for check in checks),
                           partition_key=tuple(str(column) for column in key))
        stats[str(name)] = stats[f"{schema}.{name}"] = entry
    estimates: dict[str, list[tuple[str, float]]] = {}
    for table, text in planned:
        found = stats.get(table) or stats.get(table.split(".")[-1])
        rows = planned_rows(conn, text) if found is not None else None
        if found is not None and rows is not None:
            estimates.setdefault(found.name, []).append((text, rows))
    for key, entry in list(stats.items()):
        if entry.name in estimates:
            stats[key] = replace(entry, planned=tuple(estimates[entry.name]))
    return stats


def planned_rows(conn: psycopg.Connection[Any], statement: str) -> float | None:
    """The planner's estimate of the rows an UPDATE or DELETE touches: `EXPLAIN` without
    ANALYZE plans it and runs nothing. None when it cannot be planned here (a table or column an
    earlier statement of the run creates, a lock not granted within lock_timeout)."""
    try:
        with conn.transaction():  # a savepoint: a statement that fails to plan changes nothing
            row = conn.execute(f"EXPLAIN (FORMAT JSON) {statement}").fetchone()
    except psycopg.Error:
        return None
    plan = row[0][0]["Plan"] if row else {}
    if plan.get("Node Type") == "ModifyTable" and plan.get("Plans"):
        plan = plan["Plans"][0]
    return float(plan["Plan Rows"]) if "Plan Rows" in plan else None
