-- crates.io migration 20141002195939_dumped_migration_46 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_crates_user_id ON crates (user_id);

-- migrate:down
DROP INDEX index_crates_user_id;
