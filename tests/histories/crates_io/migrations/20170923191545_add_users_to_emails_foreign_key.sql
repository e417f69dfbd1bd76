-- crates.io migration 2017-09-23-191545_add_users_to_emails_foreign_key (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE emails ADD CONSTRAINT fk_emails_user_id FOREIGN KEY (user_id) REFERENCES users (id);

-- migrate:down
ALTER TABLE emails DROP CONSTRAINT fk_emails_user_id;
