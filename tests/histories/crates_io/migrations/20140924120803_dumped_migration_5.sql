-- crates.io migration 20140924120803_dumped_migration_5 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE version_dependencies (
            version_id      INTEGER NOT NULL,
            depends_on_id   INTEGER NOT NULL
        );

-- migrate:down
DROP TABLE version_dependencies;
