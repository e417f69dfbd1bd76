-- crates.io migration 2025-02-11-122509_add-expires-at-column (converted from Diesel's up.sql/down.sql)

-- migrate:up
alter table crate_owner_invitations add column expires_at timestamptz;

comment on column crate_owner_invitations.expires_at is 'Point in time at which the invitation expires/expired.'

-- to be performed manually after the migration:
--
-- update table crate_owner_invitations set expires_at = now() + interval '30 day';

-- migrate:down
alter table crate_owner_invitations drop column expires_at;
