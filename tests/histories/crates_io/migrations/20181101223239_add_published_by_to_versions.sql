-- crates.io migration 2018-11-01-223239_add_published_by_to_versions (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions
ADD COLUMN published_by integer;

ALTER TABLE versions
ADD CONSTRAINT "fk_versions_published_by"
FOREIGN KEY (published_by)
REFERENCES users(id);

-- migrate:down
ALTER TABLE versions DROP CONSTRAINT fk_versions_published_by;

ALTER TABLE versions DROP COLUMN published_by;
