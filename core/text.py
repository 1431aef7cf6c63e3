"""Terminal text: emphasis only where a person reads it (a TTY), plain text in files and pipes."""

from __future__ import annotations

import os
from typing import Any


def is_tty(out: Any) -> bool:
    isatty = getattr(out, "isatty", None)
    try:
        return bool(isatty and isatty()) and os.environ.get("NO_COLOR") is None
    except (OSError, ValueError):
        return False


def bold(text: str, out: Any) -> str:
    """``text`` in bold when ``out`` is a terminal (and ``NO_COLOR`` is unset), else as is.
    The escape codes come from rich (imported only for a terminal), not written by hand."""
    if not is_tty(out):
        return text
    from rich.console import Console
    from rich.text import Text

    console = Console(force_terminal=True, color_system="standard", highlight=False, emoji=False,
                      markup=False, width=max(len(text), 1) + 1)
    with console.capture() as captured:
        console.print(Text(text, style="bold"), end="", soft_wrap=True)
    return captured.get()
