-- crates.io migration 20150804170130_dumped_migration_100 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crate_owners DROP CONSTRAINT fk_crate_owners_user_id;

-- migrate:down
ALTER TABLE crate_owners ADD CONSTRAINT fk_crate_owners_user_id
                           FOREIGN KEY (owner_id) REFERENCES users (id);
