-- crates.io migration 2018-01-18-172821_use_jsonb_for_features (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ALTER COLUMN features SET DATA TYPE jsonb USING features::jsonb;
ALTER TABLE versions ALTER COLUMN features SET DEFAULT '{}';
ALTER TABLE versions ALTER COLUMN features SET NOT NULL;

-- migrate:down
ALTER TABLE versions ALTER COLUMN features DROP NOT NULL;
ALTER TABLE versions ALTER COLUMN features DROP DEFAULT;
ALTER TABLE versions ALTER COLUMN features SET DATA TYPE text;
