-- crates.io migration 2024-10-24-134209_make-unique-num-not-null (converted from Diesel's up.sql/down.sql)

-- migrate:up
alter table versions
    alter column num_no_build set not null;

-- migrate:down
alter table versions
    alter column num_no_build drop not null;
