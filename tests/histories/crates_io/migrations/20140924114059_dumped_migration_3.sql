-- crates.io migration 20140924114059_dumped_migration_3 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE versions (
            id              SERIAL PRIMARY KEY,
            package_id      INTEGER NOT NULL,
            num             VARCHAR NOT NULL
        );

-- migrate:down
DROP TABLE versions;
