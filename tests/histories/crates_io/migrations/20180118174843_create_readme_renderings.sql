-- crates.io migration 2018-01-18-174843_create_readme_renderings (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE readme_renderings (
  version_id INTEGER NOT NULL PRIMARY KEY REFERENCES versions (id) ON DELETE CASCADE,
  rendered_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

INSERT INTO readme_renderings (version_id, rendered_at)
  SELECT id, readme_rendered_at FROM versions WHERE readme_rendered_at IS NOT NULL;

ALTER TABLE versions DROP COLUMN readme_rendered_at;

-- migrate:down
ALTER TABLE versions ADD COLUMN readme_rendered_at TIMESTAMP;

UPDATE versions SET readme_rendered_at = readme_renderings.rendered_at
  FROM readme_renderings
  WHERE readme_renderings.version_id = versions.id;

DROP TABLE readme_renderings;
