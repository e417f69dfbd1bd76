"""The tables as each migration of a pending run finds them. A table created (or renamed) by an
earlier migration of the same run is new: no client uses it yet and it holds only what the run
put there, so no lock hazard, no refusal and no online rewrite applies to it. A table the live
statistics show empty has no rows a scan or rewrite would hold a lock over: no lock hazard either,
though renaming or dropping it still breaks its clients. Every other table is judged by its live
statistics, or assumed large and busy without them. Pure: the statistics are read by the caller,
once, when the run begins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbops.migrate.analyze import (
    DEFAULT_MAX_BLOCKING,
    Checks,
    Columns,
    Keys,
    Rows,
    basis,
    blocking_seconds,
    known_checks,
    known_columns,
    known_keys,
    known_rows,
    parse_ahead,
    tracked_after,
)
from dbops.migrate.files import Migration
from dbops.migrate.sql import table_key

if TYPE_CHECKING:
    from dbops.schema_facts import TableStats


@dataclass(frozen=True)
class RunState:
    """What one migration starts from: the new tables (created earlier in the run: no client
    uses them yet), the empty ones (no rows: no lock hazard, but clients may use them), and the
    live statistics of the others (None: none were read, every other table is assumed large and
    busy)."""

    new: frozenset[str] = frozenset()
    empty: frozenset[str] = frozenset()
    stats: Mapping[str, TableStats] | None = None
    max_blocking: float = DEFAULT_MAX_BLOCKING  # seconds: lint.max_blocking

    @property
    def columns(self) -> Columns:
        """The live columns' types (whether a type change rewrites)."""
        return known_columns(self.stats)

    @property
    def rows(self) -> Rows:
        """The planner's row estimates of the UPDATE and DELETE statements (how much they write)."""
        return known_rows(self.stats)

    @property
    def checks(self) -> Checks:
        """The live tables' valid CHECK constraints (what they prove spares a scan)."""
        return known_checks(self.stats)

    @property
    def keys(self) -> Keys:
        """The live range-partitioned tables' keys (what an ATTACH PARTITION's CHECK proves)."""
        return known_keys(self.stats)

    def basis(self, relation: str | None) -> str:
        """The estimate a verdict on `relation` is based on, in words."""
        return basis(relation, self.stats)


def starting(stats: Mapping[str, TableStats] | None,
             max_blocking: float = DEFAULT_MAX_BLOCKING) -> RunState:
    """The state of a migration judged on its own: the live statistics' empty tables (no rows,
    and too little on disk to block for lint.max_blocking: the row estimate may be stale)."""
    empty = frozenset(table_key(name) for name, table in (stats or {}).items()
                      if table.rows == 0 and blocking_seconds(table) < max_blocking)
    return RunState(frozenset(), empty, stats, max_blocking)


def run_states(migrations: Sequence[Migration],
               stats: Mapping[str, TableStats] | None = None,
               max_blocking: float = DEFAULT_MAX_BLOCKING) -> list[RunState]:
    """One RunState per migration of a run, in order: each migration is judged against the state
    the earlier ones leave behind. A table the statistics show holding rows is never new (a list
    that begins with migrations already applied does not make a live table new)."""
    live = frozenset(table_key(name) for name, table in (stats or {}).items()
                     if table.rows > 0 or blocking_seconds(table) >= max_blocking)
    state = starting(stats, max_blocking)
    states = []
    parse_ahead(m for m in migrations if not m.baseline)
    for migration in migrations:
        states.append(state)
        if not migration.baseline:
            new, empty = tracked_after(migration, state.new, state.empty, state.columns,
                                       state.rows, state.checks, state.keys)
            state = RunState(new - live, empty, stats, max_blocking)
    return states
