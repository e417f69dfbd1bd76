-- crates.io migration 20141021103503_dumped_migration_78 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE keywords (
            id               SERIAL PRIMARY KEY,
            keyword          VARCHAR NOT NULL UNIQUE,
            crates_cnt       INTEGER NOT NULL,
            created_at       TIMESTAMP NOT NULL
        );

-- migrate:down
DROP TABLE keywords;
