"""Colour for text output: every coloured word dbops prints goes through rich, the one colour
library (tables, progress and health views use it directly)."""

from __future__ import annotations

import io


def styled(text: str, style: str) -> str:
    """`text` wrapped in the ANSI codes for a rich `style` ("red", "bold green", ...), for
    output that has already decided to be coloured."""
    # lazy: rich costs ~40 ms of start-up; only coloured output needs it
    from rich.console import Console
    from rich.text import Text

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="standard", width=10_000,
                      no_color=False, highlight=False, soft_wrap=True)
    console.print(Text(text, style=style), end="")
    return out.getvalue()
