-- Add tasks.priority (constant default: a catalog-only change on PostgreSQL 11+, no table rewrite)
-- dbops:risk low
-- dbops:estimated-duration 1s
-- dbops:requires 20250527100000
-- dbops:zero-downtime

-- migrate:up
ALTER TABLE tasks ADD COLUMN priority smallint NOT NULL DEFAULT 0;

-- migrate:down
ALTER TABLE tasks DROP COLUMN priority;
