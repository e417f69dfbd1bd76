-- crates.io migration 20141007131148_dumped_migration_59 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE version_authors ADD CONSTRAINT fk_version_authors_version_id
                                 FOREIGN KEY (version_id) REFERENCES versions (id);

-- migrate:down
ALTER TABLE version_authors DROP CONSTRAINT fk_version_authors_version_id;
