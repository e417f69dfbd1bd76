-- crates.io migration 20170102145236_dumped_migration_121 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE UNIQUE INDEX badges_crate_type ON badges (crate_id, badge_type);

-- migrate:down
DROP INDEX badges_crate_type;
