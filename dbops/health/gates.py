"""The checks an apply gate judges, by name, with their thresholds: one list for the planner (the
ChangeSet's gates), the executor (which runs them) and the checks module (which makes them).
A leaf: planning imports it without the health machinery."""

from __future__ import annotations

from dbops.config.model import Thresholds
from dbops.units import format_duration

GATE_CHECKS = ("connectivity", "connection_utilization", "long_transaction", "replication_lag",
               "error_rate", "health_query")
"""The checks an apply gate judges, in the order `dbops plan` lists them."""


def gate_thresholds(t: Thresholds) -> tuple[tuple[str, str], ...]:
    """Each gate check by name with the threshold it is judged by: what `dbops plan` puts in the
    ChangeSet's gates and what apply runs."""
    limits = (f"round trip <= {format_duration(t.response_time)}",
              f"<= {t.connection_utilization:.0%}",
              f"none older than {format_duration(t.long_transaction)}",
              f"<= {format_duration(t.replication_lag)}",
              f"<= {t.error_rate:.0%} since the previous stage",
              "answers within the statement timeout")
    return tuple(zip(GATE_CHECKS, limits, strict=True))
