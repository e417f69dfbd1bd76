-- crates.io migration 2018-06-03-195948_add_crate_size (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions
ADD COLUMN crate_size integer;

-- migrate:down
ALTER TABLE versions
DROP COLUMN crate_size;
