-- crates.io migration 2018-10-17-203221_index_crates_name (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_crates_name_ordering ON crates (name);

-- migrate:down
DROP INDEX index_crates_name_ordering;
