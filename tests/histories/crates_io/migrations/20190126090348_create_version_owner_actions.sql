-- crates.io migration 2019-01-26-090348_create_version_owner_actions (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE version_owner_actions (
    id SERIAL PRIMARY KEY,
    version_id INTEGER REFERENCES versions(id) ON DELETE CASCADE,
    owner_id INTEGER REFERENCES users(id),
    owner_token_id INTEGER REFERENCES api_tokens(id),
    action INTEGER NOT NULL,
    time TIMESTAMP NOT NULL DEFAULT now()
);

-- migrate:down
DROP TABLE version_owner_actions;
