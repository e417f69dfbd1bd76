-- crates.io migration 2025-02-11-122510_not-null-expires-at-column (converted from Diesel's up.sql/down.sql)

-- migrate:up
alter table crate_owner_invitations alter column expires_at set not null;

-- migrate:down
alter table crate_owner_invitations alter column expires_at drop not null;
