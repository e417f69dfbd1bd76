"""What making the pgbackrest engine true takes, pure (the live setup is given): the
configuration file to write, the stanza to create, and what pg_stat_archiver says about
archiving now. The planner adds these to the ChangeSet; the archive settings themselves are plan
settings (see PgBackRest.archive_settings) and go through the settings stage like any other."""

from __future__ import annotations

import difflib
import hashlib

from dbops.backup.archiving import judge
from dbops.backup.pgbackrest import LiveSetup, render_config
from dbops.changes import Change
from dbops.config.model import PgBackRest

CONFIG = "backup.pgbackrest.config"
STANZA = "backup.pgbackrest.stanza"
CHECK = "backup.pgbackrest.check"


def changes(policy: PgBackRest, live: LiveSetup) -> tuple[list[Change], list[str]]:
    """(changes, notes) for the engine's setup on the primary's host."""
    notes = [f"WAL archiving now: {judge(live.archive, policy.recovery_objective).message}"]
    if live.facts is None:
        notes.append(f"pgBackRest configuration not planned: {live.problem}")
        return [], notes
    wanted = render_config(policy, live.facts)
    found: list[Change] = []
    if live.config != wanted:
        before = None if live.config is None else _digest(live.config)
        diff = ([f"write {policy.config} ({len(wanted.splitlines())} lines)"]
                if live.config is None else
                [line.rstrip("\n") for line in difflib.unified_diff(
                    live.config.splitlines(), wanted.splitlines(), "live", "plan", lineterm="",
                    n=0)][2:])
        found.append(Change(
            kind="backup", address=CONFIG, action="+" if live.config is None else "~",
            before=before, after=_digest(wanted), risk="low",
            reason=(f"pgBackRest configuration of stanza {policy.stanza}: repository "
                    f"{policy.repository}, server {live.facts.data_directory} on port "
                    f"{live.facts.port}" + ("" if live.config is None else " (it differs)")),
            reversible=False, detail=tuple(diff), fingerprint=before or "",
            statements=(wanted,)))
    # The file's whole text is the change's one statement: apply writes exactly what was planned.
    if not live.stanza_exists:
        found.append(Change(
            kind="backup", address=STANZA, action="+", before=None, after=policy.stanza,
            risk="low", reason=(f"create stanza {policy.stanza} in {policy.repository}"
                                if live.stanza_exists is False else
                                f"create stanza {policy.stanza} ({policy.repository} is not "
                                "readable from here: stanza-create is idempotent)"),
            reversible=False))
    if found:
        found.append(Change(
            kind="backup", address=CHECK, action="~", before=None, after="pgbackrest check",
            risk="low", reason="pgbackrest check: the configuration, the repository and one WAL "
                               "segment archived (skipped while archive_mode waits for a restart)",
            reversible=True))
    return found, notes


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:12]
