"""pyinfra inventory for production: the primary and two streaming replicas, reached over SSH.

psql on the hosts runs as the postgres OS user over the local socket (peer authentication), so
no password travels in pyinfra operation arguments.
"""

_ssh = {"ssh_user": "deploy", "_sudo": True, "_sudo_user": "postgres"}

primary = [("taskmaster-db.internal", {**_ssh, "pg_role": "primary", "pg_port": 5432})]
replica = [
    ("taskmaster-replica1.internal", {**_ssh, "pg_role": "replica", "pg_port": 5432}),
    ("taskmaster-replica2.internal", {**_ssh, "pg_role": "replica", "pg_port": 5432}),
]
