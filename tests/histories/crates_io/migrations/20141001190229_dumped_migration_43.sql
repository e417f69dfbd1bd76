-- crates.io migration 20141001190229_dumped_migration_43 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_users_gh_login ON users (gh_login);

-- migrate:down
DROP INDEX index_users_gh_login;
