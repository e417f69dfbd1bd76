"""A ChangeSet as text for a terminal, JSON for machines and markdown for pull-request comments."""

from __future__ import annotations

import dataclasses

from dbops.changes import Action, Change, ChangeSet, Gate, Kind, Scalar, Summary
from dbops.style import styled

NO_CHANGES = "No changes. The database matches the plan."

_COLOR: dict[Action, str] = {"+": "green", "~": "yellow", "-": "red", "~!": "magenta"}
_HEADING: dict[Kind, str] = {
    "setting": "Settings", "role": "Roles", "migration": "Migrations", "backup": "Backup",
}
_INDENT = " " * 6
_ATTENTION_LIMIT = 10  # more flagged changes than this are counted, not listed, above the fold
_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|~&#"})


def text(cs: ChangeSet, *, color: bool) -> str:
    """The plan as a terminal shows it: changes by kind, gates, notes, then the summary line."""
    if cs.empty:
        return "\n".join([NO_CHANGES, *_text_notes(cs.notes)])
    lines = [f"dbops plan for {cs.environment} on {cs.database}"]
    if cs.backup_first:
        lines += ["", f"Backup first: into {cs.backup_first.directory} ({cs.backup_first.reason})"]
    for kind, changes in _by_kind(cs):
        lines += ["", f"{_HEADING[kind]}:"]
        for change in changes:
            lines += _text_change(change, color=color)
    if cs.destroys:
        lines += ["", f"Destroys (apply needs --allow-destroy): {len(cs.destroys)}"]
        for change in cs.destroys:
            symbol = styled("-!", "bold red") if color else "-!"
            lines.append(f"  {symbol} {change.address}: {change.reason}")
    if cs.gates:
        lines += ["", "Gates:", *(f"  {g.name}: {_checks(g)}" for g in cs.gates)]
    lines += _text_notes(cs.notes)
    lines += ["", str(cs.summary())]
    return "\n".join(lines)


def _checks(gate: Gate) -> str:
    return ", ".join(str(c) for c in gate.checks)


def json(cs: ChangeSet) -> str:
    """`cs.to_json()`, as schemas/changeset.schema.json documents it; ChangeSet.from_json reads it."""
    return cs.to_json()


def markdown(cs: ChangeSet) -> str:
    """The plan as a pull-request comment: summary, warnings and counts first, details collapsed."""
    lines = [f"### dbops plan for {_escape(cs.environment)} on {_code(cs.database)}", ""]
    if cs.empty:
        lines += [f"**{NO_CHANGES}**", ""]
    else:
        groups = [(kind, changes, _summary(cs, changes)) for kind, changes in _by_kind(cs)]
        lines += [f"**{cs.summary()}**", ""]
        lines += _markdown_destroys(cs.destroys)
        if cs.backup_first:
            lines += [f"Backup first: into {_code(cs.backup_first.directory)} "
                      f"({_escape(cs.backup_first.reason)})", ""]
        lines += _markdown_attention(cs.changes)
        lines += _markdown_counts([(kind, s) for kind, _, s in groups])
        for kind, changes, summary in groups:
            lines += _markdown_details(kind, changes, summary)
        lines += _markdown_list("Gates", [f"**{_escape(g.name)}**: {_escape(_checks(g))}"
                                          for g in cs.gates])
    lines += _markdown_list("Notes", [_escape(note) for note in cs.notes])
    return "\n".join(lines).rstrip("\n")


def _by_kind(cs: ChangeSet) -> list[tuple[Kind, tuple[Change, ...]]]:
    """The changes grouped by kind, kinds in the order they first appear."""
    return [(kind, cs.of_kind(kind)) for kind in dict.fromkeys(c.kind for c in cs.changes)]


def _summary(cs: ChangeSet, changes: tuple[Change, ...]) -> Summary:
    return dataclasses.replace(cs, changes=changes).summary()


def _value(value: Scalar) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if value != "" else "''"


def _values(change: Change) -> str:
    """`: before -> after` for a change, `: after` for a create, `: before` for a remove."""
    if change.action in ("~", "~!"):
        return f": {_value(change.before)} -> {_value(change.after)}"
    shown = change.after if change.action == "+" else change.before
    return "" if shown is None else f": {_value(shown)}"


def _text_change(change: Change, *, color: bool) -> list[str]:
    symbol = styled(change.action, _COLOR[change.action]) if color else change.action
    effect = f" ({change.takes_effect})" if change.takes_effect else ""
    lines = [f"  {symbol} {change.address}{_values(change)}{effect}"]
    if change.risk != "low":
        lines.append(f"{_INDENT}risk {change.risk}" + (f": {change.reason}" if change.reason else ""))
    if change.hosts != ("primary",):
        lines.append(f"{_INDENT}hosts: {', '.join(change.hosts)}")
    lines += [f"{_INDENT}{line}" for line in change.detail]
    return lines


def _text_notes(notes: tuple[str, ...]) -> list[str]:
    return ["", "Notes:", *(f"  {note}" for note in notes)] if notes else []


def _escape(value: str) -> str:
    """`value` as literal markdown text, safe in a table cell: punctuation that markdown, HTML or a
    table would interpret is backslash-escaped and line breaks become <br>."""
    return value.translate(_MARKDOWN_SPECIAL).replace("\r\n", "<br>").replace("\n", "<br>")


def _code(value: str) -> str:
    """`value` as an inline code span; a longer fence when it holds backticks itself."""
    return f"`` {value} ``" if "`" in value else f"`{value}`"


def _cell(value: Scalar) -> str:
    return "" if value is None else _escape(_value(value))


def _counts(summary: Summary) -> str:
    parts = [(summary.add, "to add"), (summary.change, "to change"), (summary.remove, "to remove"),
             (summary.restart, "needs restart")]
    return ", ".join(f"{n} {label}" for n, label in parts if n)


def _markdown_destroys(changes: tuple[Change, ...]) -> list[str]:
    """A caution block listing every change that drops data or access: nothing of it happens
    without --allow-destroy."""
    if not changes:
        return []
    lines = ["> [!CAUTION]",
             f"> **Destroys: {len(changes)} change(s) drop data or access** "
             "(apply needs `--allow-destroy`):"]
    lines += [f"> - {_code(c.action)} {_escape(c.address)}: {_escape(c.reason)}" for c in changes]
    return [*lines, ""]


def _markdown_attention(changes: tuple[Change, ...]) -> list[str]:
    """A warning block listing the changes that need a restart or are high risk."""
    flagged = [c for c in changes if c.needs_restart or c.risk == "high"]
    if not flagged:
        return []
    noun = "change needs" if len(flagged) == 1 else "changes need"
    lines = ["> [!WARNING]", f"> **{len(flagged)} {noun} attention** (restart or high risk):"]
    for change in flagged[:_ATTENTION_LIMIT]:
        tags = ", ".join(t for t, on in (("high risk", change.risk == "high"),
                                           ("needs a restart", change.needs_restart)) if on)
        reason = f": {_escape(change.reason)}" if change.reason else ""
        lines.append(f"> - {_code(change.action)} {_escape(change.address)} ({tags}){reason}")
    if len(flagged) > _ATTENTION_LIMIT:
        lines.append(f"> - and {len(flagged) - _ATTENTION_LIMIT} more: see the details below")
    return [*lines, ""]


def _markdown_counts(groups: list[tuple[Kind, Summary]]) -> list[str]:
    """A table of counts: a row a kind, a column a count of the summary line."""
    lines = ["| kind | add | change | remove | needs restart |", "|:--|--:|--:|--:|--:|"]
    lines += [f"| {kind} | {s.add} | {s.change} | {s.remove} | {s.restart} |" for kind, s in groups]
    return [*lines, ""]


def _markdown_details(kind: Kind, changes: tuple[Change, ...], summary: Summary) -> list[str]:
    """One collapsed block for a kind: a table of its changes, with the takes-effect and detail
    columns only when some change of the kind has one."""
    with_effect = any(c.takes_effect for c in changes)
    with_detail = any(c.detail or c.hosts != ("primary",) for c in changes)
    header = ["action", "address", "before", "after", "risk"]
    header += ["takes effect"] * with_effect + ["detail"] * with_detail
    noun = "change" if len(changes) == 1 else "changes"
    lines = [f"<details><summary>{kind}: {len(changes)} {noun} ({_counts(summary)})</summary>", "",
             _row(header), _row(["---"] * len(header))]
    for change in changes:
        cells = [_code(change.action), _escape(change.address), _cell(change.before),
                 _cell(change.after), _risk_cell(change)]
        cells += [_escape(change.takes_effect)] * with_effect
        cells += [_detail_cell(change)] * with_detail
        lines.append(_row(cells))
    return [*lines, "", "</details>", ""]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _risk_cell(change: Change) -> str:
    if change.risk == "low" or not change.reason:
        return change.risk
    return f"**{change.risk}**: {_escape(change.reason)}"


def _detail_cell(change: Change) -> str:
    hosts = [f"on {', '.join(change.hosts)}"] if change.hosts != ("primary",) else []
    return "<br>".join(_escape(line) for line in [*change.detail, *hosts])


def _markdown_list(title: str, items: list[str]) -> list[str]:
    """A titled bullet list of markdown items; nothing when there are none."""
    return [f"#### {title}", "", *(f"- {item}" for item in items), ""] if items else []
