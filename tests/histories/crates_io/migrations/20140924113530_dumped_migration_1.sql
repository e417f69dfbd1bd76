-- crates.io migration 20140924113530_dumped_migration_1 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE users (
            id              SERIAL PRIMARY KEY,
            email           VARCHAR NOT NULL UNIQUE,
            gh_access_token VARCHAR NOT NULL,
            api_token       VARCHAR NOT NULL
        );

-- migrate:down
DROP TABLE users;
