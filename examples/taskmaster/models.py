"""The seed's TaskMaster models as plain values (the schema is in migrations/)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Status = Literal["pending", "queued", "running", "succeeded", "failed", "cancelled"]
Level = Literal["debug", "info", "warn", "error"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Task:
    id: int
    pipeline_id: int
    run_id: int | None
    name: str
    status: Status
    attempt: int
    priority: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    COLUMNS = (
        "id, pipeline_id, run_id, name, status, attempt, priority, created_at, started_at,"
        " finished_at"
    )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Task:
        return cls(*row)


@dataclass(frozen=True)
class TaskLog:
    id: int
    task_id: int
    level: Level
    message: str
    created_at: datetime
