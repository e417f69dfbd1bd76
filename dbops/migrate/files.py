"""Migration files on disk: parsing, metadata, checksums, the dbops.sum integrity file and the
dependency graph. Never touches a database."""

from __future__ import annotations

import hashlib
import heapq
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from dbops.config.source import display_path
from dbops.errors import MigrationError

if TYPE_CHECKING:
    from dbops.migrate.expand.model import ExpandSpec
    from dbops.migrate.sql import Statement

SUM_FILE = "dbops.sum"
_NAME = re.compile(r"^(\d{14})_([a-z0-9][a-z0-9_]*)\.sql$")
_YAML_NAME = re.compile(r"^(\d{14})_([a-z0-9][a-z0-9_]*)\.yaml$")
_DIRECTIVE = re.compile(r"^--\s*dbops:([a-z-]+)\s*(.*?)\s*$")
_SECTION = re.compile(r"^--\s*migrate:(up|down)\s*$")
_FLAGS = {"zero-downtime", "baseline"}
_VALUED = {"requires", "risk", "estimated-duration", "transaction", "ignore"}
_RISKS = ("low", "medium", "high")


@dataclass(frozen=True)
class Section:
    """The up or down SQL of a migration, with the file line its text starts on."""

    text: str
    line: int

    def statements(self, path: Path) -> list[Statement]:
        if self.empty:
            return []  # a placeholder migration, or comments only
        # lazy: pglast loads only when SQL is actually parsed
        from dbops.migrate import sql

        try:
            return sql.split(self.text, self.line)
        except sql.SqlSyntaxError as exc:
            raise MigrationError(f"{display_path(path)}:{exc.line}: {exc.message}") from None

    @property
    def empty(self) -> bool:
        return not any(
            line.strip() and not line.strip().startswith("--") for line in self.text.splitlines()
        )


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path
    description: str
    up: Section
    down: Section | None
    requires: tuple[str, ...]
    risk: str
    estimated_duration: str | None
    zero_downtime: bool
    transaction: bool
    checksum: str
    ignores: tuple[tuple[str, str], ...] = ()  # (rule id, reason) from `-- dbops:ignore`
    file_hash: str = ""  # SHA-256 of the whole file, as dbops.sum records it
    baseline: bool = False  # `-- dbops:baseline`: an existing schema, dumped, not written by hand
    foreign: bool = False  # any SQL file linted: another tool runs it as written, never online
    expand: ExpandSpec | None = None  # a YAML migration's operations, run as expand/contract

    @property
    def file(self) -> str:
        return display_path(self.path)

    def __str__(self) -> str:
        return f"{self.version} {self.name}"


def checksum(text: str) -> str:
    """SHA-256 of a migration's up section, insensitive to line endings and outer blank lines."""
    return hashlib.sha256(text.replace("\r\n", "\n").strip().encode("utf-8")).hexdigest()


class _Where:
    """A file's display name, worked out only when a message needs it (thousands of files are
    parsed per command; almost none of them produce a message)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __format__(self, spec: str) -> str:
        return display_path(self.path)


def parse(path: Path) -> Migration:
    """One migration file; raises MigrationError naming the file and line of any problem."""
    where = _Where(path)
    if _YAML_NAME.match(path.name):
        return _parse_yaml(path)
    match = _NAME.match(path.name)
    if not match:
        raise MigrationError(
            f"{where}: file name must be <YYYYMMDDHHMMSS>_<slug>.sql "
            "(lower-case slug of letters, digits and _)"
        )
    version, name = match.groups()
    try:
        _timestamp(version)
    except ValueError:
        raise MigrationError(
            f"{where}: version {version} is not a UTC timestamp YYYYMMDDHHMMSS"
        ) from None
    content = path.read_bytes()
    text = content.decode("utf-8")
    if not text.strip():
        raise MigrationError(f"{where}: the migration file is empty")
    lines = text.splitlines()
    sections: dict[str, int] = {}
    directives: dict[str, list[str]] = {}
    description = ""
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped.startswith("--"):
            continue  # SQL: neither a section, a directive nor the description
        section = _SECTION.match(stripped)
        if section:
            if section.group(1) in sections:
                raise MigrationError(
                    f"{where}:{number}: second '-- migrate:{section.group(1)}' "
                    f"(first at line {sections[section.group(1)]})"
                )
            sections[section.group(1)] = number
            continue
        directive = _DIRECTIVE.match(stripped)
        if directive:
            key, value = directive.groups()
            _check_directive(where, number, key, value)
            directives.setdefault(key, []).append(value)
        elif not sections and line.startswith("--") and not description:
            description = line.removeprefix("--").strip()
    if "up" not in sections:
        raise MigrationError(f"{where}: no '-- migrate:up' section")
    up_at, down_at = sections["up"], sections.get("down")
    if down_at is not None and down_at < up_at:
        raise MigrationError(f"{where}:{down_at}: '-- migrate:down' must follow '-- migrate:up'")
    up = Section("\n".join(lines[up_at : down_at - 1 if down_at else None]), up_at + 1)
    down = None
    if down_at is not None:
        down = Section("\n".join(lines[down_at:]), down_at + 1)
        # An empty down section is no way back, except for an empty up: nothing to undo.
        down = None if down.empty and not up.empty else down
    if up.empty and down is None:
        down = Section("", len(lines) + 1)
    transaction = directives.get("transaction", ["on"])[-1]
    return Migration(
        version=version,
        name=name,
        path=path,
        description=description or name.replace("_", " "),
        up=up,
        down=down,
        requires=tuple(v for value in directives.get("requires", []) for v in value.split()),
        risk=directives.get("risk", ["low"])[-1],
        estimated_duration=directives.get("estimated-duration", [None])[-1],
        zero_downtime="zero-downtime" in directives,
        transaction=transaction != "off",
        checksum=checksum(up.text),
        file_hash=hashlib.sha256(content).hexdigest(),
        ignores=tuple((v.split(None, 1)[0], v.split(None, 1)[1]) for v in directives.get("ignore", [])),
        baseline="baseline" in directives,
    )


def _parse_yaml(path: Path) -> Migration:
    """A YAML migration (expand/contract operations). Its `sql` operations form the up section,
    so analysis and lint read them like any SQL migration; the checksum covers the whole file."""
    from dbops.migrate.expand.model import RawSql, parse_file

    match = _YAML_NAME.match(path.name)
    assert match is not None
    version, name = match.groups()
    try:
        _timestamp(version)
    except ValueError:
        raise MigrationError(
            f"{display_path(path)}: version {version} is not a UTC timestamp YYYYMMDDHHMMSS"
        ) from None
    spec, text = parse_file(path)
    raw = [op for op in spec.operations if isinstance(op, RawSql)]
    up = Section("\n".join(op.up for op in raw), raw[0].line if raw else 1)
    return Migration(
        version=version, name=name, path=path,
        description=name.replace("_", " "), up=up, down=None, requires=(), risk="medium",
        estimated_duration=None, zero_downtime=True, transaction=True, checksum=checksum(text),
        file_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(), expand=spec,
    )


def parse_any(path: Path, text: str | None = None) -> Migration:
    """Any SQL file for lint (Flyway, Alembic --sql, Rails, sqitch, hand-written): a dbops
    migration as `parse` reads it, otherwise the whole file (or `text`, read from standard input)
    as the up section, `-- dbops:ignore` directives honoured."""
    if text is None and (_NAME.match(path.name) or _YAML_NAME.match(path.name)):
        return parse(path)
    where = _Where(path)
    if text is None:
        text = path.read_bytes().decode("utf-8")
    # lazy: pglast loads only when SQL is actually parsed
    from dbops.migrate.sql import without_transaction_control

    text = without_transaction_control(text)
    lines = text.splitlines()
    if any(_SECTION.match(line.strip()) for line in lines):
        raise MigrationError(f"{where}: has '-- migrate:' markers but is not named "
                             "<YYYYMMDDHHMMSS>_<slug>.sql")
    ignores = []
    for number, line in enumerate(lines, start=1):
        directive = _DIRECTIVE.match(line.strip())
        if directive and directive.group(1) == "ignore":
            _check_directive(where, number, "ignore", directive.group(2))
            rule, reason = directive.group(2).split(None, 1)
            ignores.append((rule, reason))
    return Migration(version="0" * 14, name=path.stem, path=path, description=path.stem,
                     up=Section(text, 1), down=None, requires=(), risk="low",
                     estimated_duration=None, zero_downtime=False, transaction=True,
                     checksum=checksum(text), ignores=tuple(ignores), foreign=True)


def _check_directive(where: _Where, line: int, key: str, value: str) -> None:
    if key not in _FLAGS | _VALUED:
        known = ", ".join(sorted(_FLAGS | _VALUED))
        raise MigrationError(f"{where}:{line}: unknown directive 'dbops:{key}' (known: {known})")
    if key in _VALUED and not value:
        raise MigrationError(f"{where}:{line}: 'dbops:{key}' needs a value")
    if key == "risk" and value not in _RISKS:
        raise MigrationError(
            f"{where}:{line}: dbops:risk must be low, medium or high (got {value!r})"
        )
    if key == "transaction" and value not in ("on", "off"):
        raise MigrationError(f"{where}:{line}: dbops:transaction must be on or off (got {value!r})")
    if key == "ignore" and len(value.split(None, 1)) < 2:
        raise MigrationError(f"{where}:{line}: dbops:ignore needs a rule id and a reason, "
                             "e.g. '-- dbops:ignore set-not-null the table is empty'")
    if key == "requires" and not all(re.fullmatch(r"\d{14}", v) for v in value.split()):
        raise MigrationError(f"{where}:{line}: dbops:requires takes versions (YYYYMMDDHHMMSS)")


@dataclass(frozen=True)
class MigrationSet:
    """Every migration of a directory, in the order they apply: dependencies first, then by version."""

    directory: Path
    migrations: tuple[Migration, ...]

    def __iter__(self) -> Iterator[Migration]:
        return iter(self.migrations)

    def __len__(self) -> int:
        return len(self.migrations)

    def get(self, version: str) -> Migration | None:
        return self._by_version.get(version)

    @cached_property
    def _by_version(self) -> dict[str, Migration]:
        return {m.version: m for m in self.migrations}

    @property
    def latest(self) -> str | None:
        return max((m.version for m in self.migrations), default=None)


def migration_files(directory: Path) -> list[Path]:
    with os.scandir(directory) as entries:
        names = sorted(e.name for e in entries
                       if e.name.endswith((".sql", ".yaml")) and e.is_file())
    return [directory / name for name in names]


def _timestamp(version: str) -> datetime:
    """YYYYMMDDHHMMSS as a datetime (strptime costs ten times as much, for thousands of files)."""
    v = version
    return datetime(int(v[:4]), int(v[4:6]), int(v[6:8]), int(v[8:10]), int(v[10:12]),
                    int(v[12:14]))


def load(directory: Path) -> MigrationSet:
    """Parse a directory and order it; duplicates, unknown requirements and cycles are errors."""
    if not directory.is_dir():
        raise MigrationError(f"{display_path(directory)}: migration directory not found")
    migrations = [parse(path) for path in migration_files(directory)]
    by_version: dict[str, Migration] = {}
    for migration in migrations:
        if migration.version in by_version:
            raise MigrationError(
                f"duplicate version {migration.version}: "
                f"{by_version[migration.version].file} and {migration.file}"
            )
        by_version[migration.version] = migration
    for migration in migrations:
        for required in migration.requires:
            if required not in by_version:
                raise MigrationError(f"{migration.file}: requires unknown version {required}")
    return MigrationSet(directory, tuple(_ordered(by_version)))


def _ordered(by_version: dict[str, Migration]) -> list[Migration]:
    """Topological order with the version as tie-break (Kahn's algorithm over a heap)."""
    waiting = {v: set(m.requires) for v, m in by_version.items()}
    dependents: dict[str, list[str]] = {}
    for version, needs in waiting.items():
        for required in needs:
            dependents.setdefault(required, []).append(version)
    ready = [v for v, needs in waiting.items() if not needs]
    heapq.heapify(ready)
    ordered: list[Migration] = []
    while ready:
        version = heapq.heappop(ready)
        ordered.append(by_version[version])
        for other in dependents.get(version, ()):
            waiting[other].discard(version)
            if not waiting[other]:
                heapq.heappush(ready, other)
    if len(ordered) < len(by_version):
        stuck = sorted(set(by_version) - {m.version for m in ordered})
        files = " -> ".join(by_version[v].file for v in _cycle(stuck, by_version))
        raise MigrationError(f"dependency cycle: {files}")
    return ordered


def _cycle(stuck: list[str], by_version: dict[str, Migration]) -> list[str]:
    path = [stuck[0]]
    while True:
        step = next(r for r in by_version[path[-1]].requires if r in stuck)
        if step in path:
            return [*path[path.index(step) :], step]
        path.append(step)


def render_sum(directory: Path, hashes: dict[str, str] | None = None) -> str:
    """The dbops.sum text: a hash of the whole set on top, then one line per file.

    The total on the first line changes whenever any file does, so two branches that each add a
    migration conflict in git rather than in production. `hashes` (file name -> SHA-256) saves
    reading the files again when they were just parsed.
    """
    if hashes is None:
        hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                  for p in migration_files(directory)}
    lines = [f"{name} sha256:{digest}" for name, digest in sorted(hashes.items())]
    total = hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()
    header = "# written by `dbops migrate hash`; do not edit. A conflict here means two branches added migrations."
    return "\n".join([header, f"total sha256:{total}", *lines]) + "\n"


def write_sum(directory: Path) -> Path:
    path = directory / SUM_FILE
    path.write_text(render_sum(directory), encoding="utf-8")
    return path


def check_sum(directory: Path, migrations: MigrationSet | None = None) -> None:
    """Refuse a directory whose dbops.sum does not match its files, naming what differs.
    Given the directory's parsed migrations, their recorded hashes stand for the files."""
    path = directory / SUM_FILE
    where = display_path(path)
    if not path.is_file():
        if not migration_files(directory):
            return  # nothing to protect yet
        raise MigrationError(f"{where} is missing: run `dbops migrate hash`")
    recorded = _sum_lines(path.read_text(encoding="utf-8"))
    hashes = ({m.path.name: m.file_hash for m in migrations} if migrations is not None else None)
    actual = _sum_lines(render_sum(directory, hashes))
    if recorded == actual:
        return
    changes = [
        f"{name} {'added' if name not in recorded else 'removed' if name not in actual else 'changed'}"
        for name in sorted(set(recorded) | set(actual))
        if recorded.get(name) != actual.get(name) and name != "total"
    ]
    detail = ", ".join(changes) or "the total does not match"
    raise MigrationError(
        f"{where} is out of date ({detail}): run `dbops migrate hash` "
        "and commit it with the migrations"
    )


def _sum_lines(text: str) -> dict[str, str]:
    pairs = (
        line.rsplit(" ", 1)
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )
    return {name: digest for name, digest in (p for p in pairs if len(p) == 2)}


def new_version(directory: Path, now: datetime | None = None) -> str:
    """A UTC timestamp version, one second later than any taken one."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    taken = {p.name[:14] for p in migration_files(directory)} if directory.is_dir() else set()
    while stamp in taken:
        later = _timestamp(stamp) + timedelta(seconds=1)
        stamp = later.strftime("%Y%m%d%H%M%S")
    return stamp
