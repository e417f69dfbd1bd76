-- crates.io migration 2024-04-12-144026_change-crates-updated-at-trigger (converted from Diesel's up.sql/down.sql)

-- migrate:up
drop trigger trigger_crates_set_updated_at
    on crates;

create trigger trigger_crates_set_updated_at
    before update
    on crates
    for each row
execute procedure set_updated_at();

-- migrate:down
drop trigger trigger_crates_set_updated_at
    on crates;

create trigger trigger_crates_set_updated_at
    before update
    on crates
    for each row
execute procedure set_updated_at_ignore_downloads();
