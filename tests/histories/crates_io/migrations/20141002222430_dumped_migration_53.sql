-- crates.io migration 20141002222430_dumped_migration_53 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE follows ADD CONSTRAINT fk_follows_crate_id
                                 FOREIGN KEY (crate_id) REFERENCES crates (id);

-- migrate:down
ALTER TABLE follows DROP CONSTRAINT fk_follows_crate_id;
