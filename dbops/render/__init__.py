"""Rendering: every report dbops prints, in each format it supports, one module a report. The
reports are values and never format themselves; colour comes only through rich (`dbops.style`).

- `changeset`: the plan (`dbops plan`): text, json, markdown; its functions are also this
  package's own (`render.text`, `render.json`, `render.markdown`).
- `drift_report`: `dbops drift`: text, json.
- `lint_report`: `dbops migrate lint`: text, json, SARIF.
- `backup_results`: `dbops backup verify`, `prune` and `list`: text (and the list as json).
"""

from __future__ import annotations

from dbops.render.changeset import NO_CHANGES, json, markdown, text

__all__ = ["NO_CHANGES", "json", "markdown", "text"]
