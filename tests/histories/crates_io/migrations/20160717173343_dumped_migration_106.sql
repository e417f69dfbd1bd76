-- crates.io migration 20160717173343_dumped_migration_106 (converted from Diesel's up.sql/down.sql)

-- migrate:up
DROP INDEX index_crates_user_id;

-- migrate:down
CREATE INDEX index_crates_user_id ON crates (user_id);
