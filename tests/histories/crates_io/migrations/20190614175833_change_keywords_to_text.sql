-- crates.io migration 2019-06-14-175833_change_keywords_to_text (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE keywords ALTER COLUMN keyword TYPE text;

-- migrate:down
ALTER TABLE keywords ALTER COLUMN keyword TYPE varchar;
