"""A small TaskMaster workload through the PoolManager of a plan:

    python -m examples.taskmaster.demo development      (after `dbops apply development --yes`)
"""

from __future__ import annotations

import sys

from dbops.pool import PoolManager
from examples.taskmaster import PipelineRepository, TaskContextRepository, TaskRepository


def main(environment: str) -> None:
    with PoolManager.from_plan(environment) as pool:
        tasks, contexts = TaskRepository(pool), TaskContextRepository(pool)
        pipeline = PipelineRepository(pool).create(f"demo-{id(pool)}", "git@example.com:demo")
        task = tasks.create(pipeline, "build", priority=5)
        contexts.set(task.id, "image", {"tag": "1.2.3"})
        claimed = tasks.claim_next()
        assert claimed is not None
        tasks.update_status(claimed.id, "succeeded", "built in 42s")
        print(tasks.get(task.id))
        print(contexts.all(task.id))
        for log in tasks.logs(task.id):
            print(log.level, log.message)
        print(pool.get_performance_metrics())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "development")
