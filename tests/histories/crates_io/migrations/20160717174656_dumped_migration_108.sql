-- crates.io migration 20160717174656_dumped_migration_108 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates DROP COLUMN user_id;

-- migrate:down
ALTER TABLE crates ADD COLUMN user_id INTEGER NOT NULL;
