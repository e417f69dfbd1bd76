-- crates.io migration 20141121191309_dumped_migration_91 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates DROP CONSTRAINT packages_name_key;
CREATE UNIQUE INDEX index_crates_name ON crates (lower(name));

-- migrate:down
DROP INDEX index_crates_name;
ALTER TABLE crates ADD CONSTRAINT packages_name_key UNIQUE (name);
