-- crates.io migration 20141007131146_dumped_migration_57 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE version_authors (
            id               SERIAL PRIMARY KEY,
            version_id       INTEGER NOT NULL,
            user_id          INTEGER,
            name             VARCHAR NOT NULL
        );

-- migrate:down
DROP TABLE version_authors;
