-- crates.io migration 2024-11-14-124312_add-edition-column (converted from Diesel's up.sql/down.sql)

-- migrate:up
alter table versions
    add column edition text;

comment on column versions.edition is 'The declared Rust Edition required to compile this version of the crate.';

-- migrate:down
alter table versions
    drop column edition;
