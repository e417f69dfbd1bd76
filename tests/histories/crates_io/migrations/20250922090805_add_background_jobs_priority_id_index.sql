-- crates.io migration 2025-09-22-090805_add_background_jobs_priority_id_index (converted from Diesel's up.sql/down.sql)
-- dbops:transaction off

-- migrate:up
CREATE INDEX CONCURRENTLY background_jobs_priority_id_index
    ON background_jobs (priority DESC, id ASC);

-- migrate:down
DROP INDEX CONCURRENTLY background_jobs_priority_id_index;
