-- crates.io migration 2021-05-05-081208_recreate_version_downloads_date_index_with_brin_pages_per_range_1 (converted from Diesel's up.sql/down.sql)

-- migrate:up
DROP INDEX IF EXISTS index_version_downloads_by_date;
CREATE INDEX IF NOT EXISTS index_version_downloads_date ON version_downloads USING brin (date) WITH (pages_per_range = 1);

-- migrate:down
DROP INDEX index_version_downloads_date;
CREATE INDEX IF NOT EXISTS index_version_downloads_by_date ON version_downloads USING brin (date);
