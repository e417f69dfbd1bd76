-- crates.io migration 20170102131034_dumped_migration_120 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE badges ( crate_id         INTEGER NOT NULL, badge_type       VARCHAR NOT NULL, attributes       JSONB NOT NULL);

-- migrate:down
DROP TABLE badges;
