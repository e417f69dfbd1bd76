-- crates.io migration 20170309122510_generate_api_token_with_sql (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE FUNCTION random_string(int4) RETURNS text AS $$
  SELECT (array_to_string(array(
    SELECT substr(
      'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
      floor(random() * 62)::int4 + 1,
      1
    ) FROM generate_series(1, $1)
  ), ''))
$$ LANGUAGE SQL;

ALTER TABLE users ALTER COLUMN api_token SET DEFAULT random_string(32);

-- migrate:down
ALTER TABLE users ALTER COLUMN api_token DROP DEFAULT;
DROP FUNCTION random_string(int4);
