-- crates.io migration 2022-08-18-152941_links-column (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions
    ADD COLUMN links VARCHAR NULL;

-- migrate:down
ALTER TABLE versions
    DROP COLUMN links;
