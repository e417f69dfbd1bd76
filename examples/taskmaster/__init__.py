"""TaskMaster's data access over dbops's PoolManager: the seed's Task and TaskContext models as
small repositories. Writes go to the primary; lookups ask for intent read, so with replicas in
the plan they are served by a replica that has replayed the caller's own writes."""

from examples.taskmaster.models import Task, TaskLog
from examples.taskmaster.repositories import (
    PipelineRepository,
    TaskContextRepository,
    TaskRepository,
)

__all__ = ["PipelineRepository", "Task", "TaskContextRepository", "TaskLog", "TaskRepository"]
