-- crates.io migration 2024-11-14-094209_make-crate-size-not-null (converted from Diesel's up.sql/down.sql)

-- migrate:up
alter table versions
    alter column crate_size set not null;

-- migrate:down
alter table versions
    alter column crate_size drop not null;
