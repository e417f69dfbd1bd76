-- crates.io migration 2024-08-17-152408_add-yank-message (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ADD COLUMN yank_message TEXT;

COMMENT ON COLUMN versions.yank_message IS 'message associated with a yanked version';

-- migrate:down
ALTER TABLE versions DROP yank_message;
