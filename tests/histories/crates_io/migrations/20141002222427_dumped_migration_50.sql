-- crates.io migration 20141002222427_dumped_migration_50 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates ADD CONSTRAINT fk_crates_user_id
                                 FOREIGN KEY (user_id) REFERENCES users (id);

-- migrate:down
ALTER TABLE crates DROP CONSTRAINT fk_crates_user_id;
