-- crates.io migration 20140925132251_dumped_migration_9 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ADD COLUMN updated_at TIMESTAMP NOT NULL DEFAULT now();

-- migrate:down
ALTER TABLE versions DROP COLUMN updated_at;
