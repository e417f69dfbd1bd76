-- crates.io migration 2021-02-10-141019_reserve_com0_lpt0 (converted from Diesel's up.sql/down.sql)

-- migrate:up
INSERT INTO reserved_crate_names (name) VALUES ('com0'), ('lpt0') ON CONFLICT DO NOTHING;

-- migrate:down
DELETE FROM reserved_crate_names WHERE name IN ('com0', 'lpt0');
