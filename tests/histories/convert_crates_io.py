"""Convert crates.io's Diesel migrations into dbops migration files.

Reads a git repository of crates.io (a mirror without work tree is enough) at one commit and
writes `crates_io/migrations/<version>_<slug>.sql` plus `dbops.sum`, and the source's license
files and commit id beside them:

    python3 tests/histories/convert_crates_io.py /work/.mirror/rust-lang+crates.io/repo [COMMIT]

Diesel keeps a migration as `migrations/<version>_<name>/{up.sql,down.sql}`, with
`metadata.toml` saying `run_in_transaction = false` for CREATE INDEX CONCURRENTLY. Versions come
as `YYYYMMDDHHMMSS`, `YYYY-MM-DD-HHMMSS` or `YYYY-MM-DD-HHMMSS-0000`; all become the 14 digits
dbops expects (three early versions with a second of 60 to 63 roll over into the next
minute, and of 2026-05-27-120000 and 2026-05-27-120000-0000 the second takes the next second),
except Diesel's `00000000000000` set-up migration (not a timestamp), which takes the
second before the first real one. `migrations/data_oauth_github.sql` is seed data for a developer
machine, not a migration, and is left out. The SQL is copied as it is.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "crates_io"
_DIRECTORY = re.compile(r"^migrations/([^/]+)/(up\.sql|down\.sql|metadata\.toml)$")
_VERSION = re.compile(r"^(\d{14}|\d{4}-\d\d-\d\d-\d{6}(?:-\d{4})?)_(.+)$")
SETUP = "00000000000000"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


def version_of(raw: str) -> str:
    """Diesel's version as YYYYMMDDHHMMSS; three early ones have seconds of 60 to 63, which roll
    over into the next minute (the order of the history is checked to stay the same)."""
    d = raw.replace("-", "")[:14]
    minute = datetime(int(d[:4]), int(d[4:6]), int(d[6:8]), int(d[8:10]), int(d[10:12]))
    return (minute + timedelta(seconds=int(d[12:14]))).strftime("%Y%m%d%H%M%S")


def slug_of(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def render(directory: str, up: str, down: str | None, transaction: bool) -> str:
    lines = [f"-- crates.io migration {directory} (converted from Diesel's up.sql/down.sql)"]
    if not transaction:
        lines.append("-- dbops:transaction off")
    lines += ["", "-- migrate:up", up.rstrip("\n"), ""]
    if down is not None:
        lines += ["-- migrate:down", down.rstrip("\n"), ""]
    return "\n".join(lines)


def convert(repo: Path, commit: str) -> int:
    commit = git(repo, "rev-parse", commit).strip()
    files: dict[str, dict[str, str]] = {}
    for path in git(repo, "ls-tree", "-r", "--name-only", commit, "migrations/").splitlines():
        match = _DIRECTORY.match(path)
        if match:
            files.setdefault(match.group(1), {})[match.group(2)] = path
    for directory in files:
        if not _VERSION.match(directory) or "up.sql" not in files[directory]:
            raise SystemExit(f"{directory}: not a Diesel migration directory")
    # Diesel applies in the order of its version strings with the dashes removed.
    diesel_order = sorted(files, key=lambda d: d.split("_", 1)[0].replace("-", ""))
    versions: dict[str, str] = {}  # dbops version -> Diesel directory
    for directory in diesel_order:
        raw = directory.split("_", 1)[0]
        if raw == SETUP:
            continue
        version = version_of(raw)
        while version in versions:  # 2026-05-27-120000 and 2026-05-27-120000-0000 both exist
            version = version_of(str(int(version) + 1))
        versions[version] = directory
    first = datetime.strptime(min(versions), "%Y%m%d%H%M%S")
    for directory in diesel_order:
        if directory.startswith(SETUP + "_"):
            versions[(first - timedelta(seconds=1)).strftime("%Y%m%d%H%M%S")] = directory
    if [versions[v] for v in sorted(versions)] != diesel_order:
        raise SystemExit("the converted versions do not keep Diesel's order")
    target = OUT / "migrations"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for version, directory in sorted(versions.items()):
        parts = files[directory]
        up = git(repo, "show", f"{commit}:{parts['up.sql']}")
        down = git(repo, "show", f"{commit}:{parts['down.sql']}") if "down.sql" in parts else None
        metadata = git(repo, "show", f"{commit}:{parts['metadata.toml']}") \
            if "metadata.toml" in parts else ""
        transaction = not re.search(r"^\s*run_in_transaction\s*=\s*false\s*$", metadata, re.M)
        name = slug_of(_VERSION.match(directory).group(2))  # type: ignore[union-attr]
        (target / f"{version}_{name}.sql").write_text(render(directory, up, down, transaction),
                                                      encoding="utf-8")
    for license_file in ("LICENSE-MIT", "LICENSE-APACHE"):
        (OUT / license_file).write_text(git(repo, "show", f"{commit}:{license_file}"),
                                        encoding="utf-8")
    (OUT / "SOURCE").write_text(
        "https://github.com/rust-lang/crates.io migrations/ at commit\n"
        f"{commit}\n"
        "Licensed under either of the Apache License, Version 2.0 (LICENSE-APACHE) or the MIT\n"
        "license (LICENSE-MIT), at your option; converted to dbops files by\n"
        "tests/histories/convert_crates_io.py (the SQL itself is unchanged).\n",
        encoding="utf-8")
    sys.path.insert(0, str(HERE.parents[1]))
    from dbops.migrate import files as migration_files

    migration_files.load(target)
    migration_files.write_sum(target)
    return len(versions)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    count = convert(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) == 3 else "HEAD")
    print(f"{count} migrations written to {OUT / 'migrations'}")
