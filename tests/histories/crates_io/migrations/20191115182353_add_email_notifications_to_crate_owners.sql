-- crates.io migration 2019-11-15-182353_Add email notifications to crate owners (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crate_owners ADD COLUMN email_notifications BOOLEAN NOT NULL DEFAULT TRUE;

-- migrate:down
ALTER TABLE crate_owners DROP COLUMN email_notifications;
