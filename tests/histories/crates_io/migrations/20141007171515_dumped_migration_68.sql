-- crates.io migration 20141007171515_dumped_migration_68 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates ADD COLUMN description VARCHAR;

-- migrate:down
ALTER TABLE crates DROP COLUMN description;
