-- crates.io migration 20141007131737_dumped_migration_63 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crate_owners ADD CONSTRAINT fk_crate_owners_created_by
                                 FOREIGN KEY (created_by) REFERENCES users (id);

-- migrate:down
ALTER TABLE crate_owners DROP CONSTRAINT fk_crate_owners_created_by;
