-- crates.io migration 20150319224700_dumped_migration_93 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE FUNCTION canon_crate_name(text) RETURNS text AS $$
                    SELECT replace(lower($1), '-', '_')
                $$ LANGUAGE SQL
            ;

-- migrate:down
DROP FUNCTION canon_crate_name(text);
