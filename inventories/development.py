"""pyinfra inventory for development: everything runs on this machine (the embedded cluster).

Host data dbops reads: `pg_name` (the plan server the host runs: `primary`, the default in the
`primary` group, or a replica's name) and `pg_restart_command` (for settings that need a restart).
"""

primary = [("@local", {"pg_name": "primary"})]
