"""The ``dataset`` kind: an offline corpus or task set as a component (the first-party
``tokensmith-datasets`` plugin wraps every source in DATA.md)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any


class Dataset(ABC):
    """Yields examples (mappings such as ``{"text": ...}`` or ``{"prompt": ..., "answer": ...}``)
    of one split, deterministically for a seed."""

    name: str = "dataset"

    @abstractmethod
    def examples(self, split: str = "train") -> Iterator[dict[str, Any]]: ...
