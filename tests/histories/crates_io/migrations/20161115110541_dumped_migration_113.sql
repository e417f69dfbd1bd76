-- crates.io migration 20161115110541_dumped_migration_113 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE categories ( id               SERIAL PRIMARY KEY, category         VARCHAR NOT NULL UNIQUE, slug             VARCHAR NOT NULL UNIQUE, description      VARCHAR NOT NULL DEFAULT '', crates_cnt       INTEGER NOT NULL DEFAULT 0, created_at       TIMESTAMP NOT NULL DEFAULT current_timestamp);

-- migrate:down
DROP TABLE categories;
