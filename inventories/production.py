"""pyinfra inventory for production: the primary and two streaming replicas, reached over SSH.

Each host names the plan server it runs (`pg_name`: `primary` or a replica's name in
plans/production.yaml) and how to restart PostgreSQL there (`pg_restart_command`). SQL runs from
the controller over psycopg, so no password travels in pyinfra operation arguments.
"""

_ssh = {"ssh_user": "deploy", "_sudo": True}
_restart = "systemctl restart postgresql"

primary = [
    ("taskmaster-db.internal", {**_ssh, "pg_name": "primary", "pg_restart_command": _restart}),
]
replica = [
    ("taskmaster-replica1.internal", {**_ssh, "pg_name": "replica1", "pg_restart_command": _restart}),
    ("taskmaster-replica2.internal", {**_ssh, "pg_name": "replica2", "pg_restart_command": _restart}),
]
