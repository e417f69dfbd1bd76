-- crates.io migration 20170315133901_make_dependencies_schema_match_use (converted from Diesel's up.sql/down.sql)

-- migrate:up
UPDATE dependencies SET kind = 0 WHERE kind IS NULL;
ALTER TABLE dependencies
  ALTER COLUMN kind SET DEFAULT 0,
  ALTER COLUMN kind SET NOT NULL,
  ALTER COLUMN features SET DATA TYPE text[] USING string_to_array(features, ',');

-- migrate:down
ALTER TABLE dependencies
  ALTER COLUMN kind DROP DEFAULT,
  ALTER COLUMN kind DROP NOT NULL,
  ALTER COLUMN features SET DATA TYPE text USING array_to_string(features, ',');
