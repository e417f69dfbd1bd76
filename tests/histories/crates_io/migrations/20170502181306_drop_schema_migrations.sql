-- crates.io migration 20170502181306_drop_schema_migrations (converted from Diesel's up.sql/down.sql)

-- migrate:up
DROP TABLE IF EXISTS schema_migrations;

-- migrate:down
CREATE TABLE IF NOT EXISTS schema_migrations (
    id              SERIAL PRIMARY KEY,
    version         INT8 NOT NULL UNIQUE
);
