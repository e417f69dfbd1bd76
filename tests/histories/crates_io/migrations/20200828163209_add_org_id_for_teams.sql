-- crates.io migration 2020-08-28-163209_add_org_id_for_teams (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE teams
  ADD COLUMN org_id INTEGER;

-- migrate:down
-- This file should undo anything in `up.sql`
ALTER TABLE teams
  DROP COLUMN org_id;
