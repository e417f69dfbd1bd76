-- crates.io migration 2018-04-27-194025_remove_unused_indexes (converted from Diesel's up.sql/down.sql)

-- migrate:up
DROP INDEX reserved_crate_names_canon_crate_name_idx;
DROP INDEX index_users_gh_id;
DROP INDEX index_version_downloads_version_id;
DROP INDEX index_version_downloads_date;

-- migrate:down
CREATE UNIQUE INDEX reserved_crate_names_canon_crate_name_idx ON reserved_crate_names (canon_crate_name(name));
CREATE INDEX index_users_gh_id ON users (gh_id);
CREATE INDEX index_version_downloads_version_id ON version_downloads (version_id);
CREATE INDEX index_version_downloads_date ON version_downloads (date);
