"""The tables as each migration of a pending run finds them. A table created (or renamed) by an
earlier migration of the same run, or one the live statistics show empty, is new: it holds no
rows another session waits on, so no lock hazard, no refusal and no online rewrite applies to it.
Every other table is judged by its live statistics, or assumed large and busy without them.
Pure: the statistics are read by the caller, once, when the run begins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbops.migrate.analyze import SMALL_TABLE_BYTES, basis, new_after, table_key
from dbops.migrate.source import Migration

if TYPE_CHECKING:
    from dbops.inspect import TableStats


@dataclass(frozen=True)
class RunState:
    """What one migration starts from: the new tables, and the live statistics of the others
    (None: none were read, every table not new is assumed large and busy)."""

    new: frozenset[str] = frozenset()
    stats: Mapping[str, TableStats] | None = None

    def basis(self, relation: str | None) -> str:
        """The estimate a verdict on `relation` is based on, in words."""
        return basis(relation, self.stats)


def _empty(stats: Mapping[str, TableStats]) -> frozenset[str]:
    return frozenset(table_key(name) for name, table in stats.items()
                     if table.rows == 0 and table.bytes <= SMALL_TABLE_BYTES)


def starting(stats: Mapping[str, TableStats] | None) -> RunState:
    """The state of a migration judged on its own: only the live statistics' empty tables are new."""
    return RunState(_empty(stats) if stats else frozenset(), stats)


def run_states(migrations: Sequence[Migration],
               stats: Mapping[str, TableStats] | None = None) -> list[RunState]:
    """One RunState per migration of a run, in order: each migration is judged against the state
    the earlier ones leave behind. A table the statistics show holding rows is never new (a list
    that begins with migrations already applied does not make a live table new)."""
    live = frozenset(table_key(name) for name, table in (stats or {}).items()
                     if table.rows > 0 or table.bytes > SMALL_TABLE_BYTES)
    state = starting(stats)
    states = []
    for migration in migrations:
        states.append(state)
        if not migration.baseline:
            state = RunState(new_after(migration, state.new) - live, stats)
    return states
