-- crates.io migration 2019-09-15-194259_add_badges_crate_id_foreign_key (converted from Diesel's up.sql/down.sql)

-- migrate:up
DELETE FROM badges WHERE crate_id NOT IN (SELECT id FROM crates);
ALTER TABLE badges
    ADD CONSTRAINT fk_badges_crate_id FOREIGN KEY (crate_id) REFERENCES crates(id) ON DELETE CASCADE;

-- migrate:down
ALTER TABLE badges DROP CONSTRAINT fk_badges_crate_id;
