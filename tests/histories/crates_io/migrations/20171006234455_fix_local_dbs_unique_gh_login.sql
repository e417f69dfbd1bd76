-- crates.io migration 2017-10-06-234455_fix_local_dbs_unique_gh_login (converted from Diesel's up.sql/down.sql)

-- migrate:up
-- This migration should have no effect on production.
-- Its sole purpose is to fix the local database of anyone who ran 2017-09-26-200549 locally--
-- that migration can't be run on production because lower(gh_login) isn't unique on production.

CREATE INDEX IF NOT EXISTS index_users_gh_login ON users (gh_login);
ALTER TABLE users DROP CONSTRAINT IF EXISTS unique_gh_login;
DROP INDEX IF EXISTS lower_gh_login;

-- migrate:down
-- This file intentionally left blank; see the corresponding up.sql
