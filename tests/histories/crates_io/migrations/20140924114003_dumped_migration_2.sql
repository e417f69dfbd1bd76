-- crates.io migration 20140924114003_dumped_migration_2 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE packages (
            id              SERIAL PRIMARY KEY,
            name            VARCHAR NOT NULL UNIQUE,
            user_id         INTEGER NOT NULL
        );

-- migrate:down
DROP TABLE packages;
