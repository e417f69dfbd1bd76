-- crates.io migration 2023-05-25-104708_add-background-job-priority (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE background_jobs ADD priority SMALLINT NOT NULL DEFAULT 0;

-- migrate:down
ALTER TABLE background_jobs DROP priority;
