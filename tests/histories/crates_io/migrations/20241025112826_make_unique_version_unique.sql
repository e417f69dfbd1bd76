-- crates.io migration 2024-10-25-112826_make-unique-version-unique (converted from Diesel's up.sql/down.sql)
-- dbops:transaction off

-- migrate:up
create unique index concurrently if not exists versions_crate_id_num_no_build_uindex
    on versions (crate_id, num_no_build);

-- migrate:down
alter table versions
    drop constraint versions_crate_id_num_no_build_uindex;
