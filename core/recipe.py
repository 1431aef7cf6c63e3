"""The ``recipe`` kind: a training procedure a plugin registers, run by the core recipe
runner on transformers' ``Trainer`` (see adapters/training.py and docs/training.md)."""

from __future__ import annotations

from abc import ABC
from typing import Any


class Recipe(ABC):  # noqa: B024 (every method has a neutral default)
    """What a technique changes around the core runner. Every method has a neutral default,
    so a recipe overrides only what it needs.

    - :meth:`prepare` changes the model before training (surgery, freezing) and returns it;
    - :meth:`callbacks` returns ``transformers.TrainerCallback`` objects for the run.
    """

    name: str = "recipe"

    def prepare(self, model: Any, ctx: Any) -> Any:
        return model

    def callbacks(self, ctx: Any) -> list[Any]:
        return []
