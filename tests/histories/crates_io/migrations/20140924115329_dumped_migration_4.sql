-- crates.io migration 20140924115329_dumped_migration_4 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ADD CONSTRAINT unique_num UNIQUE (package_id, num);

-- migrate:down
ALTER TABLE versions DROP CONSTRAINT unique_num;
