-- crates.io migration 2017-10-09-135625_add_lower_gh_login_index (converted from Diesel's up.sql/down.sql)

-- migrate:up
DROP INDEX IF EXISTS index_users_gh_login;
CREATE INDEX lower_gh_login ON users (lower(gh_login));

-- migrate:down
DROP INDEX IF EXISTS lower_gh_login;
CREATE INDEX index_users_gh_login ON users (gh_login);
