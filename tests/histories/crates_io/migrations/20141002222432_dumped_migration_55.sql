-- crates.io migration 20141002222432_dumped_migration_55 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ADD CONSTRAINT fk_versions_crate_id
                                 FOREIGN KEY (crate_id) REFERENCES crates (id);

-- migrate:down
ALTER TABLE versions DROP CONSTRAINT fk_versions_crate_id;
