-- crates.io migration 2019-09-19-191534_remove-index-already-removed-in-prod (converted from Diesel's up.sql/down.sql)

-- migrate:up
DROP INDEX IF EXISTS index_version_crate_id;

-- migrate:down
CREATE INDEX IF NOT EXISTS index_version_crate_id ON versions USING btree (crate_id);
