-- crates.io migration 2024-03-05-120032_add-crate-downloads-index (converted from Diesel's up.sql/down.sql)
-- dbops:transaction off

-- migrate:up
create index concurrently if not exists crate_downloads_downloads_crate_id_index
    on crate_downloads (downloads desc, crate_id desc);

-- migrate:down
drop index concurrently crate_downloads_downloads_crate_id_index;
