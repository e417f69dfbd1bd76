-- crates.io migration 20141002222428_dumped_migration_51 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE dependencies ADD CONSTRAINT fk_dependencies_version_id
                                 FOREIGN KEY (version_id) REFERENCES versions (id);

-- migrate:down
ALTER TABLE dependencies DROP CONSTRAINT fk_dependencies_version_id;
