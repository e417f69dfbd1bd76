-- crates.io migration 2024-08-29-135458_add-publish-notifications-column (converted from Diesel's up.sql/down.sql)

-- migrate:up
alter table users
    add column publish_notifications boolean not null default true;

comment on column users.publish_notifications is 'Whether or not the user wants to receive notifications when a package they own is published';

-- migrate:down
ALTER TABLE users DROP publish_notifications;
