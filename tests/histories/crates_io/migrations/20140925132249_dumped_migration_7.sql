-- crates.io migration 20140925132249_dumped_migration_7 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE packages ADD COLUMN created_at TIMESTAMP NOT NULL DEFAULT now();

-- migrate:down
ALTER TABLE packages DROP COLUMN created_at;
