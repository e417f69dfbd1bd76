"""The pyinfra inventory file read once: every (group, host, data) it lists, in file order.
Execute maps the hosts to the plan's servers; a fleet's `inventory_group` turns a group's
hosts into targets."""

from __future__ import annotations

import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbops.config.source import display_path
from dbops.errors import InventoryError


@dataclass(frozen=True)
class InventoryHost:
    """One host of one group of the inventory, with the data the file gives it."""

    group: str
    name: str
    data: dict[str, Any]


def read(path: Path) -> list[InventoryHost]:
    """The hosts of the inventory file `path`: module-level lists (or tuples) of host names or
    (name, data) pairs, `_`-prefixed names skipped; raises InventoryError naming the file."""
    try:
        namespace = runpy.run_path(str(path))
    except (OSError, SyntaxError) as exc:
        raise InventoryError(f"{display_path(path)}: cannot load inventory: {exc}") from None
    except Exception as exc:  # the inventory is Python: any error in it is the file's
        raise InventoryError(f"{display_path(path)}: cannot load inventory: "
                             f"{type(exc).__name__}: {exc}") from None
    hosts = []
    for group, members in namespace.items():
        if group.startswith("_") or not isinstance(members, list | tuple):
            continue
        for member in members:
            name, data = (member, {}) if isinstance(member, str) else _pair(path, group, member)
            hosts.append(InventoryHost(group, name, dict(data)))
    return hosts


def _pair(path: Path, group: str, member: Any) -> tuple[str, dict[str, Any]]:
    if (isinstance(member, list | tuple) and len(member) == 2 and isinstance(member[0], str)
            and isinstance(member[1], dict)):
        return member[0], member[1]
    raise InventoryError(f"{display_path(path)}: group {group}: a {type(member).__name__} that "
                         "is neither a host name nor a (name, data) pair")  # data may hold secrets
