"""pyinfra inventory for development: everything runs on this machine (the embedded cluster)."""

primary = [("@local", {"pg_role": "primary"})]
