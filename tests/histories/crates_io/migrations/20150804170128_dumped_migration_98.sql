-- crates.io migration 20150804170128_dumped_migration_98 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE teams (
            id            SERIAL PRIMARY KEY,
            login         VARCHAR NOT NULL UNIQUE,
            github_id     INTEGER NOT NULL UNIQUE,
            name          VARCHAR,
            avatar        VARCHAR
        );

-- migrate:down
DROP TABLE teams;
