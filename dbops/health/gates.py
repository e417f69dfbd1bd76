"""What a gate is: the checks an apply gate judges, by name, with their thresholds, and the gates
a plan's health section asks for. One model for the planner (the ChangeSet's gates), the
executor (which runs them) and the checks module (which makes them); config.model.Gates is only
the plan's declaration. A leaf: planning imports it without the health machinery."""

from __future__ import annotations

from dbops.changes import Gate, GateCheck
from dbops.config.model import Health, Thresholds
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


def plan_gates(health: Health) -> tuple[Gate, ...]:
    """The gates apply runs for a plan's health section: before the first stage (when asked)
    and after each stage, or once after the apply; none when health checks are off."""
    if not health.enabled:
        return ()
    checks = tuple(GateCheck(name, limit) for name, limit in gate_thresholds(health.thresholds))
    gates = []
    if health.gates.before_apply:
        gates.append(Gate("before apply", checks))
    gates.append(Gate("after each stage" if health.gates.after_each_stage else "after apply",
                      checks))
    return tuple(gates)
