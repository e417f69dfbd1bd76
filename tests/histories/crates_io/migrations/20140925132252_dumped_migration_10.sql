-- crates.io migration 20140925132252_dumped_migration_10 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ADD COLUMN created_at TIMESTAMP NOT NULL DEFAULT now();

-- migrate:down
ALTER TABLE versions DROP COLUMN created_at;
