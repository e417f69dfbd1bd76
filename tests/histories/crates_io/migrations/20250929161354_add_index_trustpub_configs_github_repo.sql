-- crates.io migration 2025-09-29-161354_add_index_trustpub_configs_github_repo (converted from Diesel's up.sql/down.sql)
-- dbops:transaction off

-- migrate:up
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_trustpub_configs_github_repo
ON trustpub_configs_github (LOWER(repository_owner), LOWER(repository_name));

-- migrate:down
DROP INDEX idx_trustpub_configs_github_repo;
