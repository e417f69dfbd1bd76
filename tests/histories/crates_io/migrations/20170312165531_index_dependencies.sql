-- crates.io migration 20170312165531_index_dependencies (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX ON dependencies (crate_id, version_id);

-- migrate:down
DROP INDEX dependencies_crate_id_version_id_idx;
