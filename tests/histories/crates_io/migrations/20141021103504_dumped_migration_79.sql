-- crates.io migration 20141021103504_dumped_migration_79 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE crates_keywords (
            crate_id         INTEGER NOT NULL,
            keyword_id       INTEGER NOT NULL
        );

-- migrate:down
DROP TABLE crates_keywords;
