-- crates.io migration 2026-04-09-114747_add-lib-name-column (converted from Diesel's up.sql/down.sql)

-- migrate:up
alter table versions
    add column lib_name text;

comment on column versions.lib_name is 'The library target name for this version (the Rust identifier used in `use` statements), or NULL if the version has no library target or has not been analyzed yet.';

-- migrate:down
alter table versions
    drop column lib_name;
