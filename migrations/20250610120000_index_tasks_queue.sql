-- Partial index for the task queue (queued tasks by priority, oldest first), built concurrently
-- dbops:risk medium
-- dbops:estimated-duration 2m
-- dbops:requires 20250603090000
-- dbops:zero-downtime
-- dbops:transaction off

-- migrate:up
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_queue_idx ON tasks (priority DESC, created_at) WHERE status = 'queued';

-- migrate:down
DROP INDEX CONCURRENTLY IF EXISTS tasks_queue_idx;
