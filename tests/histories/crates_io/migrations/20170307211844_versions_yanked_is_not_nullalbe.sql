-- crates.io migration 20170307211844_versions_yanked_is_not_nullalbe (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ALTER COLUMN yanked SET NOT NULL;

-- migrate:down
ALTER TABLE versions ALTER COLUMN yanked DROP NOT NULL;
