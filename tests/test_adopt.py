"""`dbops import ENV --from-database`: a live server described as a plan that plans clean."""

from __future__ import annotations

import yaml
from harness import Project, TestDatabase

from dbops.local import Cluster

PASSWORD = "imp0rt-s3cret"  # the test cluster trusts local connections: never checked, never written


def db_environment(database: TestDatabase) -> dict[str, str]:
    return {"DB_HOST": database.host, "DB_PORT": str(database.port), "DB_NAME": database.name,
            "DB_USER": database.user, "DB_PASSWORD": PASSWORD, "DB_SSL_MODE": "disable"}


def prepare(database: TestDatabase) -> None:
    with database.connect() as conn:
        conn.autocommit = True
        for statement in (
            "ALTER SYSTEM SET work_mem = '24MB'",
            "ALTER SYSTEM SET log_min_duration_statement = '250ms'",
            "ALTER SYSTEM SET idle_in_transaction_session_timeout = '10min'",
            "SELECT pg_reload_conf()",
            "CREATE ROLE app_web LOGIN CONNECTION LIMIT 40",
            "ALTER ROLE app_web SET statement_timeout = '30s'",
            "CREATE ROLE app_report NOLOGIN CONNECTION LIMIT 3",
        ):
            conn.execute(statement)


def test_import_plans_clean(project: Project, pg_replica: Cluster, server_reset: None) -> None:
    prepare(project.database)
    env = db_environment(project.database)
    result = project.run("import", "imported", "--from-database", env=env)
    assert result.returncode == 0, result.stderr
    path = project.root / "plans" / "imported.yaml"
    text = path.read_text()
    assert PASSWORD not in text + result.stdout + result.stderr
    assert "  password: ${DB_PASSWORD}" in text
    assert "# from postgres@" in text and "PostgreSQL " in text
    assert "work_mem: 24MB  # ALTER SYSTEM (postgresql.auto.conf)" in text
    assert "# Superusers are left out (dbops does not manage them): postgres." in text
    assert "pg_stat_replication" in text
    plan = yaml.safe_load(text)
    assert plan["settings"]["log_min_duration_statement"] == "250ms"
    assert plan["settings"]["idle_in_transaction_session_timeout"] == "10min"
    assert "port" not in plan["settings"]
    assert plan["roles"]["app_web"] == {"login": True, "connection_limit": 40,
                                        "settings": {"statement_timeout": "30s"}}
    assert plan["roles"]["app_report"] == {"login": False, "connection_limit": 3}
    assert "postgres" not in plan["roles"]
    assert plan["pool"] == {"profile": "oltp", "role": "app_web", "instances": 1, "min_size": 5,
                            "max_size": 20, "reserve": 5}

    validated = project.run("validate", "imported")
    assert validated.returncode == 0, validated.stderr
    planned = project.run("plan", "imported", "--diff", env=env)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "No changes" in planned.stdout
    assert "≤ role limit 40" in planned.stdout  # the budget note: the pool fits the role

    again = project.run("import", "imported", "--from-database", env=env)
    assert again.returncode == 1
    assert again.stderr == "error: plans/imported.yaml already exists: dbops does not overwrite it\n"


def test_import_sizes_the_pool_to_a_small_limit(project: Project, server_reset: None) -> None:
    with project.database.connect() as conn:
        conn.autocommit = True
        conn.execute("CREATE ROLE app_small LOGIN CONNECTION LIMIT 8")
    db = project.database
    dsn = f"host={db.host} port={db.port} dbname={db.name} user={db.user} password={PASSWORD}"
    result = project.run("import", "small", "--from-database", "--dsn", dsn,
                         "--profile", "analytics")
    assert result.returncode == 0, result.stderr
    plan = yaml.safe_load((project.root / "plans" / "small.yaml").read_text())
    assert plan["pool"] == {"profile": "analytics", "role": "app_small", "instances": 1,
                            "min_size": 1, "max_size": 3, "reserve": 5}
    planned = project.run("plan", "small", "--diff", env=db_environment(db))
    assert planned.returncode == 0, planned.stdout + planned.stderr


def test_import_needs_a_database(project: Project) -> None:
    result = project.run("import", "nowhere", "--from-database")
    assert result.returncode == 1
    assert result.stderr == ("error: no database named: set DB_NAME (and DB_HOST, DB_PORT, "
                             "DB_USER, DB_PASSWORD) or give --dsn\n")
    assert not (project.root / "plans" / "nowhere.yaml").exists()
