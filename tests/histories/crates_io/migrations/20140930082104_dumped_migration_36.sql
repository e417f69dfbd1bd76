-- crates.io migration 20140930082104_dumped_migration_36 (converted from Diesel's up.sql/down.sql)

-- migrate:up
DROP TABLE version_dependencies;

-- migrate:down
CREATE TABLE version_dependencies (
                            version_id INTEGER
                        );
