-- crates.io migration 2019-11-03-003946_tidy_up_version_owner_actions (converted from Diesel's up.sql/down.sql)

-- migrate:up
-- I expect that it will be save to apply this migration in production as the code that adds records
-- to this table is not used until this changeset.

ALTER TABLE version_owner_actions
RENAME COLUMN owner_id TO user_id
;

ALTER TABLE version_owner_actions
RENAME COLUMN owner_token_id TO api_token_id
;

ALTER TABLE version_owner_actions
ALTER COLUMN user_id
SET NOT NULL
;

ALTER TABLE version_owner_actions
ALTER COLUMN version_id
SET NOT NULL
;

-- migrate:down
ALTER TABLE version_owner_actions
ALTER COLUMN user_id
DROP NOT NULL
;

ALTER TABLE version_owner_actions
ALTER COLUMN version_id
DROP NOT NULL
;

ALTER TABLE version_owner_actions
RENAME COLUMN user_id TO owner_id
;

ALTER TABLE version_owner_actions
RENAME COLUMN api_token_id TO owner_token_id
;
