-- crates.io migration 20170804200817_add_email_table (converted from Diesel's up.sql/down.sql)

-- migrate:up
-- Your SQL goes here
CREATE table emails (
    id          SERIAL PRIMARY KEY,
    user_id     INTEGER NOT NULL UNIQUE,
    email       VARCHAR NOT NULL,
    verified    BOOLEAN DEFAULT false NOT NULL
);

CREATE table tokens (
    id          SERIAL PRIMARY KEY,
    email_id    INTEGER NOT NULL UNIQUE REFERENCES emails,
    token       VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT now()
);

INSERT INTO emails (user_id, email)
    SELECT id, email FROM users WHERE email IS NOT NULL;

-- migrate:down
-- This file should undo anything in `up.sql`
DROP table tokens; 
DROP table emails;
