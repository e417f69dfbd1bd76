-- crates.io migration 20141002195940_dumped_migration_47 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE follows (
            user_id          INTEGER NOT NULL,
            crate_id         INTEGER NOT NULL
        );

-- migrate:down
DROP TABLE follows;
