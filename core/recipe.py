"""The ``recipe`` kind: a training procedure a plugin registers, run by the core recipe
runner on transformers' ``Trainer`` (see adapters/training.py and docs/training.md).

A recipe changes what is around the runner, never the loop itself: the model before
training (:meth:`Recipe.prepare`: surgery, extra parameters, freezing) and what happens
during it (:meth:`Recipe.callbacks`: ``transformers.TrainerCallback`` objects, which may
evaluate at any point through :meth:`TrainContext.evaluate`). The runner hands both a
:class:`TrainContext`. A run ends with a :class:`TrainResult`.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from .errors import ConfigError


@attrs.frozen
class EvalPoint:
    """One evaluation: the optimizer step it ran after (0: before training), the mean
    evaluation loss, and a label (``"step"``, ``"start"``, ``"end"`` or a recipe's own, such
    as ``"before ln_f"``)."""

    step: int
    loss: float
    label: str = "step"


@attrs.define(eq=False)
class TrainContext:
    """What a recipe sees. ``prepare(model, ctx)`` runs before the trainer exists (``trainer``
    is ``None``); ``callbacks(ctx)`` after, so callbacks may keep ``ctx`` and call
    :meth:`evaluate`. ``registry`` builds other components by name; ``settings`` is the
    ``[train]`` table (:class:`~tokensmith.TrainSettings`); ``spec`` the whole
    :class:`~tokensmith.RecipeSpec` when the run came from one."""

    runtime: Any
    model: Any
    tokenizer: Any = None
    registry: Any = None
    settings: Any = None
    spec: Any = None
    output_dir: Path | None = None
    trainer: Any = None
    evaluations: list[EvalPoint] = attrs.field(factory=list)
    _evaluate: Callable[[str], float | None] | None = attrs.field(default=None, repr=False)

    @property
    def rank(self) -> int:
        return int(getattr(self.runtime, "rank", 0))

    @property
    def world_size(self) -> int:
        return int(getattr(self.runtime, "world_size", 1))

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0

    def evaluate(self, label: str = "step") -> float | None:
        """Evaluate now on the evaluation data (on every rank: call it from a callback, which
        runs on all of them), record an :class:`EvalPoint` with ``label`` and return its loss;
        ``None`` when the run has no evaluation data."""
        if self._evaluate is None:
            raise ConfigError("evaluate() is available once the trainer exists", component="recipe",
                              hint="call ctx.evaluate from a callback, not from prepare()")
        return self._evaluate(label)


@attrs.define(eq=False)
class TrainResult:
    """What a run produced. ``losses`` are ``(step, training loss)`` pairs, one per logging
    step (every step by default), averaged over ranks; ``evaluations`` every
    :class:`EvalPoint` in order; ``report`` the run's :class:`~tokensmith.Report` (also written
    as ``train.json``/``.png``/``.md`` in ``output_dir`` by rank 0); ``final_dir`` the saved
    final model (a checkpoint directory, loadable as a model source) or ``None``."""

    losses: list[tuple[int, float]]
    evaluations: list[EvalPoint]
    report: Any
    output_dir: Path
    steps: int
    world_size: int
    seconds: float
    model: Any = attrs.field(default=None, repr=False)
    final_dir: Path | None = None
    checkpoints: list[Path] = attrs.field(factory=list)

    @property
    def final_loss(self) -> float | None:
        """The last logged training loss."""
        return self.losses[-1][1] if self.losses else None

    @property
    def final_eval_loss(self) -> float | None:
        return self.evaluations[-1].loss if self.evaluations else None


class Recipe(ABC):  # noqa: B024 (every method has a neutral default)
    """What a technique changes around the core runner. Every method has a neutral default,
    so a recipe overrides only what it needs.

    - :meth:`prepare` changes the model before training (surgery, freezing) and returns it;
      the ``[train]`` trainable/frozen globs are applied to what it returns;
    - :meth:`callbacks` returns ``transformers.TrainerCallback`` objects for the run.

    Both receive the run's :class:`TrainContext`.
    """

    name: str = "recipe"

    def prepare(self, model: Any, ctx: TrainContext) -> Any:
        return model

    def callbacks(self, ctx: TrainContext) -> list[Any]:
        return []
