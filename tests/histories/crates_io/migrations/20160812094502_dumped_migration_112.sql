-- crates.io migration 20160812094502_dumped_migration_112 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE UNIQUE INDEX users_gh_id ON users (gh_id) WHERE gh_id > 0;

-- migrate:down
DROP INDEX users_gh_id;
