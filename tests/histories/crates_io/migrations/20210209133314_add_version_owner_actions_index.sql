-- crates.io migration 2021-02-09-133314_add_version_owner_actions_index (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX IF NOT EXISTS index_version_owner_actions_by_version_id ON version_owner_actions (version_id);

-- migrate:down
DROP INDEX IF EXISTS index_version_owner_actions_by_version_id;
