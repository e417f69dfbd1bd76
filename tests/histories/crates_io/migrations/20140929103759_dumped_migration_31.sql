-- crates.io migration 20140929103759_dumped_migration_31 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE version_downloads (
            id              SERIAL PRIMARY KEY,
            version_id      INTEGER NOT NULL,
            downloads       INTEGER NOT NULL,
            counted         INTEGER NOT NULL,
            date            TIMESTAMP NOT NULL,
            processed       BOOLEAN NOT NULL
        );

-- migrate:down
DROP TABLE version_downloads;
