-- crates.io migration 20140929103756_dumped_migration_28 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE crate_downloads (
            id              SERIAL PRIMARY KEY,
            crate_id        INTEGER NOT NULL,
            downloads       INTEGER NOT NULL,
            date            TIMESTAMP NOT NULL
        );

-- migrate:down
DROP TABLE crate_downloads;
