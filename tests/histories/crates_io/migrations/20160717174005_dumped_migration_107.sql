-- crates.io migration 20160717174005_dumped_migration_107 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates DROP CONSTRAINT fk_crates_user_id;

-- migrate:down
ALTER TABLE crates ADD CONSTRAINT fk_crates_user_id
                           FOREIGN KEY (user_id) REFERENCES users (id);
