-- crates.io migration 20160812094501_dumped_migration_111 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE users ALTER COLUMN gh_id SET NOT NULL;

-- migrate:down
ALTER TABLE users ALTER COLUMN gh_id DROP NOT NULL;
