"""pyinfra inventory for staging: one primary and one streaming replica, reached over SSH."""

_ssh = {"ssh_user": "deploy", "_sudo": True, "_sudo_user": "postgres"}

primary = [("staging-db.internal", {**_ssh, "pg_role": "primary", "pg_port": 5432})]
replica = [("staging-replica1.internal", {**_ssh, "pg_role": "replica", "pg_port": 5432})]
