"""Repositories: one class per model, each method one query or one transaction on the pool."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from dbops.pool import PooledConnection, PoolManager
from examples.taskmaster.models import FINISHED, Level, Status, Task, TaskLog


class PipelineRepository:
    def __init__(self, pool: PoolManager) -> None:
        self.pool = pool

    def create(self, name: str, repository: str) -> int:
        rows = self.pool.query(
            "INSERT INTO pipelines (name, repository) VALUES (%s, %s) RETURNING id",
            (name, repository),
        )
        return int(rows[0][0])


class TaskRepository:
    """Tasks and their logs."""

    def __init__(self, pool: PoolManager) -> None:
        self.pool = pool

    def create(
        self, pipeline_id: int, name: str, *, priority: int = 0, status: Status = "queued"
    ) -> Task:
        rows = self.pool.query(
            f"INSERT INTO tasks (pipeline_id, name, priority, status) VALUES (%s, %s, %s, %s)"
            f" RETURNING {Task.COLUMNS}",
            (pipeline_id, name, priority, status),
        )
        return Task.from_row(rows[0])

    def get(self, task_id: int) -> Task | None:
        rows = self.pool.query(
            f"SELECT {Task.COLUMNS} FROM tasks WHERE id = %s", (task_id,), read_only=True
        )
        return Task.from_row(rows[0]) if rows else None

    def update_status(
        self, task_id: int, status: Status, message: str, *, level: Level = "info"
    ) -> Task:
        """The seed's example: the status change and its task_logs row in one transaction."""

        def change(conn: PooledConnection) -> Task:
            row = conn.execute(
                f"UPDATE tasks SET status = %s,"
                f" started_at = CASE WHEN %s = 'running' THEN now() ELSE started_at END,"
                f" finished_at = CASE WHEN %s THEN now() ELSE finished_at END"
                f" WHERE id = %s RETURNING {Task.COLUMNS}",
                (status, status, status in FINISHED, task_id),
            ).fetchone()
            if row is None:
                raise LookupError(f"no task {task_id}")
            conn.execute(
                "INSERT INTO task_logs (task_id, level, message) VALUES (%s, %s, %s)",
                (task_id, level, message),
            )
            return Task.from_row(row)

        return self.pool.transaction(change)

    def claim_next(self) -> Task | None:
        """Take the highest-priority queued task (oldest first) and mark it running."""

        def claim(conn: PooledConnection) -> Task | None:
            row = conn.execute(
                f"UPDATE tasks SET status = 'running', started_at = now(), attempt = attempt + 1"
                f" WHERE id = (SELECT id FROM tasks WHERE status = 'queued'"
                f"  ORDER BY priority DESC, created_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
                f" RETURNING {Task.COLUMNS}"
            ).fetchone()
            return Task.from_row(row) if row else None

        return self.pool.transaction(claim)

    def queued(self, limit: int = 10) -> list[Task]:
        rows = self.pool.query(
            f"SELECT {Task.COLUMNS} FROM tasks WHERE status = 'queued'"
            " ORDER BY priority DESC, created_at LIMIT %s",
            (limit,),
            read_only=True,
        )
        return [Task.from_row(r) for r in rows]

    def logs(self, task_id: int) -> list[TaskLog]:
        rows = self.pool.query(
            "SELECT id, task_id, level, message, created_at FROM task_logs"
            " WHERE task_id = %s ORDER BY id",
            (task_id,),
            read_only=True,
        )
        return [TaskLog(*r) for r in rows]


class TaskContextRepository:
    """Key/value context of a task (JSON values)."""

    def __init__(self, pool: PoolManager) -> None:
        self.pool = pool

    def set(self, task_id: int, key: str, value: Any) -> None:
        self.pool.query(
            "INSERT INTO task_contexts (task_id, key, value) VALUES (%s, %s, %s)"
            " ON CONFLICT (task_id, key) DO UPDATE SET value = EXCLUDED.value",
            (task_id, key, Jsonb(value)),
        )

    def get(self, task_id: int, key: str) -> Any:
        rows = self.pool.query(
            "SELECT value FROM task_contexts WHERE task_id = %s AND key = %s",
            (task_id, key),
            read_only=True,
        )
        return rows[0][0] if rows else None

    def all(self, task_id: int) -> dict[str, Any]:
        rows = self.pool.query(
            "SELECT key, value FROM task_contexts WHERE task_id = %s ORDER BY key",
            (task_id,),
            read_only=True,
        )
        return dict(rows)
