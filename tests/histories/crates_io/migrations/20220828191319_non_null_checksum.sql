-- crates.io migration 2022-08-28-191319_non-null-checksum (converted from Diesel's up.sql/down.sql)

-- migrate:up
alter table versions
    alter column checksum set not null;

-- migrate:down
alter table versions
    alter column checksum drop not null;
