-- crates.io migration 20150319224701_dumped_migration_94 (converted from Diesel's up.sql/down.sql)

-- migrate:up
DROP INDEX index_crates_name;
CREATE UNIQUE INDEX index_crates_name ON crates (canon_crate_name(name));

-- migrate:down
DROP INDEX index_crates_name;
CREATE UNIQUE INDEX index_crates_name ON crates (lower(name));
