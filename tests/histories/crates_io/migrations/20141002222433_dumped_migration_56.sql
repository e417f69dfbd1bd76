-- crates.io migration 20141002222433_dumped_migration_56 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE follows ADD CONSTRAINT fk_follows_user_id
                                 FOREIGN KEY (user_id) REFERENCES users (id);

-- migrate:down
ALTER TABLE follows DROP CONSTRAINT fk_follows_user_id;
