"""How healthy something is: the one vocabulary the health checks, the apply gates and the
pool's own status share. Part of the value model: imports nothing of dbops.

`ok`, `warning`, `critical`, in that order. The pool's `get_health_status()` also spells them
as the seed application did (`healthy`, `degraded`, `unhealthy`): the same three levels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

Status = Literal["ok", "warning", "critical"]
STATUSES: tuple[Status, ...] = ("ok", "warning", "critical")

WARNING_SHARE = 0.8
"""A measured value warns at 80 % of its threshold and is critical above it."""

SeedWord = Literal["healthy", "degraded", "unhealthy"]
SEED_WORDS: Mapping[Status, SeedWord] = {
    "ok": "healthy",
    "warning": "degraded",
    "critical": "unhealthy",
}


def worst(statuses: Iterable[Status]) -> Status:
    """The worst of `statuses`; ok when there are none."""
    return max(statuses, key=STATUSES.index, default="ok")


def status_of(value: float, threshold: float) -> Status:
    """Higher is worse: critical above the threshold, warning above 80 % of it."""
    if value > threshold:
        return "critical"
    return "warning" if value > threshold * WARNING_SHARE else "ok"
