"""Expand/contract migrations: YAML files of operations (model), the SQL each phase runs (ddl),
the expansion's state in schema dbops (state), and the phases expand, complete and abort
(phases), so old and new application versions are served at once."""
