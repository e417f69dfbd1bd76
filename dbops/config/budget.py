"""The connection budget: the one rule for how many connections the application's pools may open.

Three callers judge a plan by it: the plan's semantic checks (with the plan's own settings),
the planner (with the live server's settings and roles) and the pool (the share each instance
gets). The rule: the application runs `instances` pools, each of at most `max_size`
connections per server, and `reserve` more are kept for migrations, admin sessions and dbops.
That demand must fit the pool role's connection limit (when it has one), and the role's limit
(or, without one, the demand) must fit max_connections minus the reserved slots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dbops.config.source import JsonPath

# PostgreSQL's default superuser_reserved_connections, when neither plan nor server says.
SUPERUSER_RESERVED_DEFAULT = 3


@dataclass(frozen=True)
class Budget:
    """One pool demand held against a role limit and a server's connection capacity.

    `role_limit` None: the role has no limit (or there is no pool role). `max_connections`
    None: the server's capacity is not known here (the planner checks it against the live
    server). `reserved` is superuser_reserved_connections + reserved_connections.
    """

    instances: int
    max_size: int
    reserve: int
    role: str | None = None
    role_limit: int | None = None
    max_connections: int | None = None
    reserved: int = 0

    @property
    def demand(self) -> int:
        """Connections the application's pools can open at most, plus the reserve."""
        return self.instances * self.max_size + self.reserve

    @property
    def available(self) -> int | None:
        """Connections the server leaves for non-superusers, if known."""
        return None if self.max_connections is None else self.max_connections - self.reserved

    @property
    def share(self) -> int | None:
        """Connections one instance's pool may open to one server under the role's limit
        (a replica enforces the same role limit on its own sessions), or None without one."""
        if self.role_limit is None:
            return None
        return (self.role_limit - self.reserve) // self.instances

    @property
    def spelled(self) -> str:
        instances = f"{self.instances} instance{'' if self.instances == 1 else 's'}"
        return f"{instances} × {self.max_size} + {self.reserve} reserve = {self.demand}"

    @property
    def share_rule(self) -> str:
        """Why `share` is what it is, in one line."""
        if self.role_limit is None:
            reason = (
                f"role {self.role} has no connection limit in the plan"
                if self.role
                else "no pool.role in the plan"
            )
            return f"{reason}: max_size bounds each pool"
        return (
            f"role {self.role}: (connection_limit {self.role_limit} - reserve {self.reserve})"
            f" // {self.instances} instances = {self.share} per server"
        )

    def problems(self) -> list[tuple[JsonPath, str]]:
        """Each way the plan exceeds the budget: (the plan path to blame, the message)."""
        found: list[tuple[JsonPath, str]] = []
        limit, available = self.role_limit, self.available
        if limit is not None and self.demand > limit:
            found.append(
                (
                    ("pool", "max_size"),
                    f"connection budget: {self.spelled} exceeds role {self.role}'s "
                    f"connection limit {limit}",
                )
            )
        if available is None:
            return found
        where = f"max_connections {self.max_connections} minus {self.reserved} reserved ({available})"
        if limit is not None and limit > available:
            found.append(
                (
                    ("roles", self.role or "", "connection_limit"),
                    f"connection budget: role {self.role}'s connection limit {limit} "
                    f"exceeds {where}",
                )
            )
        elif limit is None and self.demand > available:
            found.append((("pool", "max_size"), f"connection budget: {self.spelled} exceeds {where}"))
        return found

    def note(self) -> str:
        """The arithmetic of a plan that fits, for a reader of the plan output."""
        role_part = f" ≤ role limit {self.role_limit}" if self.role_limit is not None else ""
        where = (
            ""
            if self.available is None
            else f" ≤ max_connections {self.max_connections} minus {self.reserved} reserved"
            f" ({self.available})"
        )
        return f"connection budget: {self.spelled}{role_part}{where}"


def connection_budget(
    instances: int,
    max_size: int,
    reserve: int,
    *,
    role: str | None = None,
    role_limit: int | None = None,
    max_connections: int | None = None,
    reserved: int = 0,
) -> Budget:
    """The budget of a pool section; a negative `role_limit` (PostgreSQL's -1) means none."""
    return Budget(
        instances,
        max_size,
        reserve,
        role or None,
        None if role_limit is None or role_limit < 0 else role_limit,
        max_connections,
        reserved,
    )


def server_capacity(value: Callable[[str], int]) -> tuple[int, int]:
    """(max_connections, connections reserved for superusers and pg_use_reserved_connections):
    what every pool of the server must fit in, from the setting values `value` gives."""
    return (
        value("max_connections"),
        value("superuser_reserved_connections") + value("reserved_connections"),
    )
