-- crates.io migration 20140925153704_dumped_migration_13 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE metadata (
            total_downloads        BIGINT NOT NULL
        );

-- migrate:down
DROP TABLE metadata;
