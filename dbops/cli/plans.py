"""`dbops validate|plan|apply|drift|health|local`: the declarative loop and the embedded database."""

from __future__ import annotations

import hashlib
import os
import sys
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dbops.changes import ChangeSet
from dbops.cli import exits
from dbops.cli.common import (
    _confirm,
    _env_argument,
    _load,
    _project,
    _render,
    _reporting,
    _set_option,
    fail,
    handle_errors,
    main,
)
from dbops.config.load import load_plan, plan_files, resolve_plan_path, validate_file
from dbops.config.source import display_path
from dbops.connect import mask
from dbops.errors import (
    ConnectFailed,
    DbopsError,
    DestroyRefused,
    InvalidChangeSet,
    PlanError,
    PrivilegeMissing,
    Problem,
    UsageError,
)
from dbops.units import format_duration, parse_duration

if TYPE_CHECKING:
    from dbops.config.model import Plan
    from dbops.execute import ApplyReport

MAX_PLAN_FILE = 16 * 2**20  # a saved ChangeSet of thousands of migrations fits many times over
MAX_LOCK_WAIT = timedelta(hours=1)


@main.command()
@click.argument("plans", nargs=-1)
@handle_errors
def validate(plans: tuple[str, ...]) -> None:
    """Check plan files (every file in plans/ when none is named): exit 1 on any problem."""
    project = _project()
    root = project.root
    paths = [resolve_plan_path(ref, root) for ref in plans] if plans else plan_files(root)
    if not paths:
        raise UsageError(f"no plan files in {display_path(project.plans)}/")
    problems = [p for path in paths for p in validate_file(path, root=root) or _files(path, root)]
    for problem in problems:
        fail(str(problem))
    if problems:
        sys.exit(exits.EXIT_ERROR)
    click.echo(f"{len(paths)} plan(s) valid: {', '.join(display_path(p) for p in paths)}")


def _files(path: Path, root: Path) -> list[Problem]:
    """What a valid plan names on disk: its migrations directory, a file for its target."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops import pipeline

    try:
        the_plan = load_plan(str(path), root=root)
    except PlanError:
        return []  # an abstract plan: validate_file has checked what can be
    return pipeline.file_problems(the_plan)


@main.command()
@_env_argument
@click.option(
    "--diff",
    "--detailed-exitcode",
    "diff",
    is_flag=True,
    help="Exit 2 when there are changes (the pull-request check).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text")
@click.option("--out", type=click.Path(path_type=Path), help="Save the plan to apply it later.")
@click.option("--target", "target_ids", multiple=True, metavar="ID",
              help="With a fleet plan: only this target (repeatable).")
@_set_option
@handle_errors
def plan(env: str | None, diff: bool, fmt: str, out: Path | None, target_ids: tuple[str, ...],
         overrides: tuple[str, ...]) -> None:
    """Show what apply would change; never writes (one read-only transaction)."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops import pipeline

    the_plan = _load(env, overrides)
    if the_plan.fleet is not None or target_ids:
        from dbops.cli import fleet

        if out is not None:
            raise DbopsError("--out saves one database's plan: not with a fleet plan")
        fleet.plan(the_plan, target_ids, fmt=fmt, diff=diff)
        return
    planned = pipeline.plan(the_plan)
    click.echo(_render(planned.changeset, fmt))
    if out is not None:
        out.write_text(planned.changeset.to_json() + "\n", encoding="utf-8")
        click.echo(f"saved the plan to {display_path(out)}", err=True)
    if diff and (not planned.changeset.empty or planned.live.unfinished):
        sys.exit(exits.EXIT_CHANGES)  # an apply that died left something for the next one to record


@main.command()
@_env_argument
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--plan-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Apply a plan saved with `dbops plan --out`: refused unless it is, change for change, "
    "what the plan makes now.",
)
@click.option("--dry-run", is_flag=True, help="Print the exact pyinfra operations; run nothing.")
@click.option("--allow-restart", is_flag=True, help="Apply settings that need a restart.")
@click.option(
    "--allow-destroy",
    is_flag=True,
    help="Run changes that drop data or access (down migrations, dropped tables or columns, "
    "revoked logins, pruned backups); without it apply refuses them.",
)
@click.option(
    "--skip-backup",
    is_flag=True,
    help="Apply without the policy's before-migrate backup (recorded in the audit).",
)
@click.option(
    "--lock-wait",
    default="0s",
    metavar="DURATION",
    help="How long to wait for another apply on this database (default 0s: refuse at once).",
)
@click.option("--target", "target_ids", multiple=True, metavar="ID",
              help="With a fleet plan: only this target (repeatable).")
@click.option("--resume", is_flag=True,
              help="With a fleet plan: continue a halted rollout (targets at the plan are skipped).")
@click.option("--skip-unreachable", is_flag=True,
              help="With a fleet plan: roll out without the targets that cannot be reached "
              "(audited) instead of refusing.")
@_set_option
@handle_errors
def apply(
    env: str | None,
    yes: bool,
    plan_file: Path | None,
    dry_run: bool,
    allow_restart: bool,
    allow_destroy: bool,
    skip_backup: bool,
    lock_wait: str,
    target_ids: tuple[str, ...],
    resume: bool,
    skip_unreachable: bool,
    overrides: tuple[str, ...],
) -> None:
    """Plan, confirm, then execute through pyinfra with health gates and automatic rollback.
    Holds the apply lock from planning to the audit row: one apply at a time per database.
    A fleet plan rolls out: the canary, a soak, then batches; the first failure halts."""
    the_plan = _load(env, overrides)
    wait = _duration("--lock-wait", lock_wait)
    if the_plan.fleet is not None or target_ids or resume or skip_unreachable:
        from dbops.cli import fleet

        if the_plan.fleet is None:
            raise DbopsError("--target, --resume and --skip-unreachable go with a fleet plan: "
                             "this plan has no fleet")
        if plan_file is not None:
            raise DbopsError("--plan-file holds one database's plan: not with a fleet plan")
        fleet.apply(the_plan, target_ids, yes=yes, dry_run=dry_run, resume=resume,
                    skip_unreachable=skip_unreachable, allow_restart=allow_restart,
                    allow_destroy=allow_destroy, skip_backup=skip_backup, lock_wait=wait)
        return
    try:
        report = _apply(the_plan, plan_file, wait, dry_run=dry_run, allow_restart=allow_restart,
                        allow_destroy=allow_destroy, skip_backup=skip_backup, yes=yes)
    except ConnectFailed as exc:
        if not dry_run:  # apply never reached the database to write its own audit row
            # lazy: keeps `dbops --help` and other commands from loading what this command needs
            from dbops import audit

            audit.record(the_plan, "apply", str(exc), result="failed")
        raise
    if report is None:
        return
    for line in _report_lines(report):
        click.echo(mask(line), err=report.result != "applied")
    if report.result != "applied":
        sys.exit(exits.EXIT_ERROR)


def _apply(the_plan: Plan, plan_file: Path | None, wait: timedelta, *, dry_run: bool,
           allow_restart: bool, allow_destroy: bool, skip_backup: bool,
           yes: bool) -> ApplyReport | None:
    """Plan under the apply lock, show, confirm and execute; None when nothing was executed."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops import pipeline

    saved, digest = _read_plan_file(plan_file) if plan_file is not None else (None, None)
    lock = nullcontext(0) if dry_run else pipeline.apply_lock(the_plan, wait)
    with lock as lock_pid:
        planned = pipeline.plan(the_plan, command="apply")
        changeset = planned.changeset
        if saved is not None and plan_file is not None:
            pipeline.check_saved(saved, changeset, display_path(plan_file))
        click.echo(_render(changeset, "text"))
        if changeset.empty and not planned.live.unfinished:
            return None
        if dry_run:
            try:
                pipeline.check_privileges(planned, doctor=f"dbops doctor {the_plan.environment}")
            except PrivilegeMissing as exc:
                click.echo(f"apply would refuse: {exc}", err=True)
            for op in pipeline.dry_run(the_plan, changeset, allow_restart=allow_restart,
                                       skip_backup=skip_backup):
                kind = ("python.call" if op.run is not None else "server.shell" if op.file is None
                        else "files.put" if op.file.content is not None else "files.directory")
                click.echo(mask(f"{kind} [{op.target.host}] {op.name}"))
                for command in op.commands:
                    click.echo(mask(f"    {command}"))
            if changeset.destroys and not allow_destroy:
                click.echo(f"apply would refuse: {_destroy_refusal(changeset)}", err=True)
            return None
        pipeline.check_privileges(planned, doctor=f"dbops doctor {the_plan.environment}")
        if changeset.destroys and not allow_destroy:
            raise DestroyRefused(_destroy_refusal(changeset))
        _confirm("apply these changes", the_plan.environment, yes)
        with _reporting():
            report = pipeline.apply(
                the_plan,
                changeset,
                planned.live,
                allow_restart=allow_restart,
                skip_backup=skip_backup,
                notify=lambda message: click.echo(mask(message)),
                lock_pid=lock_pid,
                plan_file_sha256=digest,
            )
    return report


def _read_plan_file(path: Path) -> tuple[ChangeSet, str]:
    """A saved plan file, bounded and parsed, with the SHA-256 of its bytes (for the audit)."""
    if path.stat().st_size > MAX_PLAN_FILE:
        raise InvalidChangeSet(f"{display_path(path)}: larger than {MAX_PLAN_FILE // 2**20} MiB: "
                               "not a dbops plan file")
    raw = path.read_bytes()
    try:
        return ChangeSet.from_json(raw.decode("utf-8")), hashlib.sha256(raw).hexdigest()
    except UnicodeDecodeError as exc:
        raise InvalidChangeSet(f"{display_path(path)}: not a dbops plan file: {exc}") from None
    except InvalidChangeSet as exc:
        raise InvalidChangeSet(f"{display_path(path)}: {exc}") from None


def _destroy_refusal(changeset: ChangeSet) -> str:
    addresses = ", ".join(c.address for c in changeset.destroys)
    return (f"{len(changeset.destroys)} change(s) drop data or access ({addresses}): "
            "apply them with --allow-destroy")


def _duration(option: str, text: str) -> timedelta:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if value > MAX_LOCK_WAIT:
        raise UsageError(f"{option}: at most {format_duration(MAX_LOCK_WAIT)} (got {text})")
    return value


def _report_lines(report: ApplyReport) -> list[str]:
    lines = [f"apply {report.result}" + (f": {report.reason}" if report.reason else "")]
    lines += [f"  applied: {item}" for item in report.applied]
    lines += [f"  rolled back: {item}" for item in report.rolled_back]
    lines += [f"  NOT undone: {item}" for item in report.not_undone]
    lines += [f"  skipped: {item} (needs --allow-restart)" for item in report.skipped]
    return lines


@main.command()
@_env_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--target", "target_ids", multiple=True, metavar="ID",
              help="With a fleet plan: only this target (repeatable).")
@_set_option
@handle_errors
def drift(env: str | None, fmt: str, target_ids: tuple[str, ...],
          overrides: tuple[str, ...]) -> None:
    """Out-of-band drift (exit 2) vs pending configuration (exit 3); 0 in sync. Read-only.
    A fleet plan: per target, then a summary; the exit code is the worst target's."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops import pipeline
    from dbops.render import drift_report

    the_plan = _load(env, overrides)
    if the_plan.fleet is not None or target_ids:
        # lazy: only a fleet plan needs the rollout machinery
        from dbops.cli import fleet

        fleet.drift(the_plan, target_ids, fmt=fmt)
    report = pipeline.drift(the_plan)
    code = exits.drift(report)
    click.echo(drift_report.json(report, code) if fmt == "json" else drift_report.text(report))
    sys.exit(code)


@main.command()
@_env_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--watch",
    is_flag=True,
    help="Check again every few seconds (a live table on a terminal) until Ctrl-C.",
)
@click.option(
    "--serve",
    "address",
    metavar="HOST:PORT",
    help="Monitor (alerts, recovery) and serve /health, /ready and /metrics, e.g. 127.0.0.1:9187. "
    "Beyond loopback the endpoints need the bearer token in DBOPS_HEALTH_TOKEN.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="With --serve on a non-loopback address: serve without a token, to anyone.",
)
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE.html",
              help="Check once, then write a self-contained HTML report of the recorded history "
              "with plots and trend forecasts (needs dbops[report]).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path),
              help="With --serve: serve https with this certificate (PEM, chain included).")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path),
              help="With --serve: the private key of --tls-cert (PEM).")
@click.option("--target", "target_ids", multiple=True, metavar="ID",
              help="With a fleet plan: only this target (repeatable).")
@_set_option
@handle_errors
def health(
    env: str | None, fmt: str, watch: bool, address: str | None, insecure: bool,
    report_path: Path | None, tls_cert: Path | None, tls_key: Path | None,
    target_ids: tuple[str, ...], overrides: tuple[str, ...]
) -> None:
    """Check the database: exit 0 healthy, 2 warning, 3 critical, 1 could not check."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.health import command
    from dbops.health.exposure import TOKEN_VARIABLE, exposure

    if address is None and (insecure or tls_cert or tls_key):
        raise UsageError("--insecure, --tls-cert and --tls-key go with --serve")
    if report_path is not None and (address or watch or fmt != "text"):
        raise UsageError("--report writes one report: it does not go with --serve, --watch or --format")
    where = None if address is None else exposure(
        address, token=os.environ.get(TOKEN_VARIABLE), insecure=insecure, tls_cert=tls_cert,
        tls_key=tls_key)

    the_plan = _load(env, overrides)
    if the_plan.fleet is not None or target_ids:
        from dbops.cli import fleet

        if where is not None or watch or report_path is not None:
            raise DbopsError("a fleet's health is checked once per target: --serve, --watch and "
                             "--report go with a single-database plan")
        fleet.health(the_plan, target_ids, fmt=fmt)
    if fmt == "json" and not the_plan.health.enabled:  # a JSON reader gets a JSON error
        raise DbopsError("could not check: health checks are off in the plan (health.enabled: false)")

    def echo(line: str) -> None:
        click.echo(mask(line))

    if report_path is not None:
        sys.exit(exits.health(command.write_report(the_plan, report_path, echo=echo)))
    if where is not None:
        if watch:
            raise UsageError("--serve runs until stopped: it does not go with --watch")
        command.serve(the_plan, where, echo=echo)
        sys.exit(exits.EXIT_OK)
    sys.exit(exits.health(command.run_health(the_plan, fmt, watch, echo=echo)))


@main.group()
def local() -> None:
    """The embedded development database under .dbops/ (what plans/development.yaml uses)."""


def _print_status(action: str) -> None:
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops import local as embedded

    cluster = embedded.development_cluster(_project().root)
    status = getattr(cluster, action)()
    if status.running:
        click.echo(
            f"running: PostgreSQL {status.version or '(version unknown)'} on "
            f"127.0.0.1:{status.port or '(port unknown)'} "
            f"(pid {status.pid}, data {status.data_dir})"
        )
    else:
        state = "stopped" if status.initialized else "not created"
        click.echo(f"{state}: {status.data_dir}")


@local.command("up")
@handle_errors
def local_up() -> None:
    """Create (first time) and start the development cluster; does nothing when it runs."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops import local as embedded

    _print_status("up")
    root = _project().root
    plan = load_plan("development", root=root)
    if embedded.development_cluster(root).ensure_database(plan.database.name):
        click.echo(f"created database {plan.database.name}")


@local.command("down")
@handle_errors
def local_down() -> None:
    """Stop the development cluster (its data stays under .dbops/)."""
    _print_status("down")


@local.command("status")
@handle_errors
def local_status() -> None:
    """Show whether the development cluster runs, where, and which version."""
    _print_status("status")
