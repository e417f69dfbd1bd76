"""pyinfra inventory for staging: one primary and one streaming replica, reached over SSH.

Each host names the plan server it runs (`pg_name`: `primary` or a replica's name in
plans/staging.yaml) and how to restart PostgreSQL there (`pg_restart_command`).
"""

_ssh = {"ssh_user": "deploy", "_sudo": True}
_restart = "systemctl restart postgresql"

primary = [
    ("staging-db.internal", {**_ssh, "pg_name": "primary", "pg_restart_command": _restart}),
]
replica = [
    ("staging-replica1.internal", {**_ssh, "pg_name": "replica1", "pg_restart_command": _restart}),
]
