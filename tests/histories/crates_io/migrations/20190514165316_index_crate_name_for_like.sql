-- crates.io migration 2019-05-14-165316_index_crate_name_for_like (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
CREATE INDEX index_crates_name_tgrm ON crates USING gin (canon_crate_name(name) gin_trgm_ops);

-- migrate:down
DROP INDEX index_crates_name_tgrm;
DROP EXTENSION pg_trgm;
