-- crates.io migration 2024-05-27-142004_add-versions-id-yanked-index (converted from Diesel's up.sql/down.sql)
-- dbops:transaction off

-- migrate:up
create index concurrently if not exists versions_id_yanked_idx
    on versions (id) WHERE yanked;

-- migrate:down
drop index concurrently versions_id_yanked_idx;
