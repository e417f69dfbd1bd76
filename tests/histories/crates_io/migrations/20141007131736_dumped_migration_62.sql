-- crates.io migration 20141007131736_dumped_migration_62 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crate_owners ADD CONSTRAINT fk_crate_owners_user_id
                                 FOREIGN KEY (user_id) REFERENCES users (id);

-- migrate:down
ALTER TABLE crate_owners DROP CONSTRAINT fk_crate_owners_user_id;
