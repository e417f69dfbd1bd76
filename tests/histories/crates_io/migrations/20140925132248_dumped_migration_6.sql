-- crates.io migration 20140925132248_dumped_migration_6 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE packages ADD COLUMN updated_at TIMESTAMP NOT NULL DEFAULT now();

-- migrate:down
ALTER TABLE packages DROP COLUMN updated_at;
