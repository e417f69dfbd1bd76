-- crates.io migration 2019-04-04-192902_create_publish_rate_overrides (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE publish_rate_overrides (
  user_id INTEGER PRIMARY KEY REFERENCES users,
  burst INTEGER NOT NULL
);

-- migrate:down
DROP TABLE publish_rate_overrides;
