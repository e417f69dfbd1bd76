-- crates.io migration 20140930082105_dumped_migration_37 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE dependencies (
            id               SERIAL PRIMARY KEY,
            version_id       INTEGER NOT NULL,
            crate_id         INTEGER NOT NULL,
            req              VARCHAR NOT NULL,
            optional         BOOLEAN NOT NULL,
            default_features BOOLEAN NOT NULL,
            features         VARCHAR NOT NULL
        );

-- migrate:down
DROP TABLE dependencies;
