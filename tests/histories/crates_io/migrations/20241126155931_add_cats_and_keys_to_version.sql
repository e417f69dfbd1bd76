-- crates.io migration 2024-11-26-155931_add-cats-and-keys-to-version (converted from Diesel's up.sql/down.sql)

-- migrate:up
alter table versions
    add column categories text[] default array[]::text[] not null,
    add column keywords text[] default array[]::text[] not null;

comment on column versions.categories is 'The list of `categories` in the `Cargo.toml` file of this version.';
comment on column versions.keywords is 'The list of `keywords` in the `Cargo.toml` file of this version.';

-- migrate:down
alter table versions
    drop column categories,
    drop column keywords;
