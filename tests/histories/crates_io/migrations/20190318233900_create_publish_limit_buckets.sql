-- crates.io migration 2019-03-18-233900_create_publish_limit_buckets (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE publish_limit_buckets(
  user_id INTEGER PRIMARY KEY NOT NULL REFERENCES users,
  tokens INTEGER NOT NULL,
  last_refill TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- migrate:down
DROP TABLE publish_limit_buckets;
