-- crates.io migration 20140925153705_dumped_migration_14 (converted from Diesel's up.sql/down.sql)

-- migrate:up
INSERT INTO metadata (total_downloads) VALUES (0);

-- migrate:down
DELETE FROM metadata;
