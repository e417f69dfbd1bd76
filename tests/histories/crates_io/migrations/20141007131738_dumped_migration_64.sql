-- crates.io migration 20141007131738_dumped_migration_64 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crate_owners ADD CONSTRAINT fk_crate_owners_crate_id
                                 FOREIGN KEY (crate_id) REFERENCES crates (id);

-- migrate:down
ALTER TABLE crate_owners DROP CONSTRAINT fk_crate_owners_crate_id;
