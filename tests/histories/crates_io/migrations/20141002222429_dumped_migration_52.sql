-- crates.io migration 20141002222429_dumped_migration_52 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE dependencies ADD CONSTRAINT fk_dependencies_crate_id
                                 FOREIGN KEY (crate_id) REFERENCES crates (id);

-- migrate:down
ALTER TABLE dependencies DROP CONSTRAINT fk_dependencies_crate_id;
