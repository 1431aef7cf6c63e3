"""One progress bar for every long loop of an evaluation, benchmark or trainer.

A bar is drawn (tqdm, on stderr) only where a person watches: stderr is a terminal, or
``TOKENSMITH_PROGRESS=1``; ``TOKENSMITH_PROGRESS=0`` or ``enabled=False`` turns it off. In a
pipe or a CI log nothing is written, so logs stay free of carriage-return noise.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tokensmith.core.tokenizer import require_flag

T = TypeVar("T")


def progress_enabled(enabled: bool | None = None) -> bool:
    """Whether a bar is shown: ``enabled`` when given (a bool), else ``TOKENSMITH_PROGRESS``
    (``1``/``0``), else whether stderr is a terminal."""
    if enabled is not None:
        return require_flag(enabled, "progress", "progress")
    forced = os.environ.get("TOKENSMITH_PROGRESS")
    if forced in ("0", "1"):
        return forced == "1"
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class _Silent:
    """What a disabled bar is: the iterable itself, and the bar methods doing nothing."""

    def __init__(self, iterable: Iterable[Any] | None) -> None:
        self.iterable = iterable

    def __iter__(self) -> Iterator[Any]:
        return iter(self.iterable if self.iterable is not None else ())

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", enabled: bool | None = None) -> Any:
    """``iterable`` wrapped in a progress bar (iterate it), or, without one, a bar to
    ``update(n)`` by hand (use it as a context manager). ``total`` defaults to
    ``len(iterable)`` where it has one; a generator streams with a counting bar."""
    if not progress_enabled(enabled):
        return _Silent(iterable)
    from tqdm.auto import tqdm

    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, file=sys.stderr, dynamic_ncols=True)
