-- crates.io migration 2017-09-23-210614_move_readme_rendering_onto_versions (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ADD COLUMN readme_rendered_at TIMESTAMP;
UPDATE versions SET readme_rendered_at = readme_rendering.rendered_at
  FROM readme_rendering WHERE readme_rendering.version_id = versions.id;
DROP TABLE readme_rendering;

-- migrate:down
CREATE TABLE readme_rendering (
    version_id INTEGER NOT NULL PRIMARY KEY REFERENCES versions (id) ON DELETE CASCADE,
    rendered_at TIMESTAMP NOT NULL
);

INSERT INTO readme_rendering (version_id, rendered_at)
  SELECT id, readme_rendered_at FROM versions WHERE readme_rendered_at IS NOT NULL;

ALTER TABLE versions DROP COLUMN readme_rendered_at;
