-- crates.io migration 20140929103753_dumped_migration_25 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_version_num ON versions (num);

-- migrate:down
DROP INDEX index_version_num;
