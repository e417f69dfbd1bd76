-- crates.io migration 2024-02-19-113226_delete-badges-table (converted from Diesel's up.sql/down.sql)

-- migrate:up
drop table badges;

-- migrate:down
create table if not exists badges
(
    crate_id   integer not null
        constraint fk_badges_crate_id
            references crates
            on delete cascade,
    badge_type varchar not null,
    attributes jsonb   not null,
    primary key (crate_id, badge_type)
);
