-- crates.io migration 2023-10-13-080226_add-features-limit (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates ADD max_features SMALLINT;

-- migrate:down
ALTER TABLE crates DROP max_features;
