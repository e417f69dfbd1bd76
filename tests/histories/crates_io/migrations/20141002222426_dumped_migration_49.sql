-- crates.io migration 20141002222426_dumped_migration_49 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crate_downloads ADD CONSTRAINT fk_crate_downloads_crate_id
                                 FOREIGN KEY (crate_id) REFERENCES crates (id);

-- migrate:down
ALTER TABLE crate_downloads DROP CONSTRAINT fk_crate_downloads_crate_id;
