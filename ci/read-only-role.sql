-- A read-only role for dbops in CI: what `dbops plan --diff`, `dbops drift` and
-- `dbops migrate lint --env` need (they only read; plan runs in a read-only transaction).
-- Create the role first (CREATE ROLE dbops_ci LOGIN PASSWORD '...'), replace dbops_ci with
-- its name and app_db with the database's, and run this as the role that runs `dbops apply`
-- (it owns schema dbops; granting pg_monitor needs a superuser or ADMIN on pg_monitor).
-- tests/test_ci_action.py runs plan --diff, lint and drift as a role with exactly these grants.

-- Every setting's value and source (pg_read_all_settings), every session in pg_stat_activity
-- and replication state, for the plan's settings, health and replica checks.
GRANT pg_monitor TO dbops_ci;
GRANT CONNECT ON DATABASE app_db TO dbops_ci;
-- dbops' own state: migration history, last-applied snapshot, backup catalog, audit log.
GRANT USAGE ON SCHEMA dbops TO dbops_ci;
GRANT SELECT ON ALL TABLES IN SCHEMA dbops TO dbops_ci;
-- Tables a later dbops version adds to schema dbops.
ALTER DEFAULT PRIVILEGES IN SCHEMA dbops GRANT SELECT ON TABLES TO dbops_ci;
