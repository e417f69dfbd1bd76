-- crates.io migration 20141007131735_dumped_migration_61 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE crate_owners (
            id               SERIAL PRIMARY KEY,
            crate_id         INTEGER NOT NULL,
            user_id          INTEGER NOT NULL,
            created_at       TIMESTAMP NOT NULL,
            created_by       INTEGER
        );

-- migrate:down
DROP TABLE crate_owners;
