-- crates.io migration 20141002222431_dumped_migration_54 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE version_downloads ADD CONSTRAINT fk_version_downloads_version_id
                                 FOREIGN KEY (version_id) REFERENCES versions (id);

-- migrate:down
ALTER TABLE version_downloads DROP CONSTRAINT fk_version_downloads_version_id;
