-- crates.io migration 20141007131147_dumped_migration_58 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE version_authors ADD CONSTRAINT fk_version_authors_user_id
                                 FOREIGN KEY (user_id) REFERENCES users (id);

-- migrate:down
ALTER TABLE version_authors DROP CONSTRAINT fk_version_authors_user_id;
