-- crates.io migration 2026-06-26-100902-0000_versions_num_max_length (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions
    ADD CONSTRAINT versions_num_max_length
    CHECK (char_length(num) <= 150) NOT VALID;

-- migrate:down
ALTER TABLE versions DROP CONSTRAINT versions_num_max_length;
