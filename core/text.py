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
    """``text`` in bold when ``out`` is a terminal (and ``NO_COLOR`` is unset), else as is."""
    return f"\033[1m{text}\033[0m" if is_tty(out) else text
