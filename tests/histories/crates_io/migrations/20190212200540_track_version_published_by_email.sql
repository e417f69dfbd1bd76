-- crates.io migration 2019-02-12-200540_track_version_published_by_email (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE versions_published_by (
    version_id INTEGER NOT NULL PRIMARY KEY REFERENCES versions(id) ON DELETE CASCADE,
    email VARCHAR NOT NULL
);

-- migrate:down
DROP TABLE versions_published_by;
