-- crates.io migration 20141007131149_dumped_migration_60 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_version_authors_version_id
                           ON version_authors (version_id);

-- migrate:down
DROP INDEX index_version_authors_version_id;
