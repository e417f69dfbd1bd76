-- crates.io migration 20160811151954_dumped_migration_110 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_users_gh_id
                           ON users (gh_id);

-- migrate:down
DROP INDEX index_users_gh_id;
