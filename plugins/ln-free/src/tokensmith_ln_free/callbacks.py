"""The removal schedule during a run: a ``transformers.TrainerCallback`` (on every rank).

Heimersheim (2024); Baroni et al. (2025), arXiv 2507.02559. Live fake norms measure σ̄ on
the training forward passes only; after each step σ̄ is averaged over the ranks, then the
events of that step are applied between two evaluations.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from .finetune import apply_event, average_over_ranks
from .surgery import fake_norms


class RemovalCallback(TrainerCallback):
    """Applies ``recipe.events`` (an :class:`~tokensmith_ln_free.finetune.LNFreeRecipe`) to
    ``ctx.model`` and evaluates around them through ``ctx.evaluate``."""

    def __init__(self, recipe: Any, ctx: Any) -> None:
        self.recipe, self.ctx = recipe, ctx

    def _live(self) -> list[Any]:
        return [n for n in fake_norms(self.ctx.model).values() if n.mode == "live"]

    def on_train_begin(self, args, state, control, **kwargs):
        # resumed: σ̄ came back with the checkpoint's buffers, but which norms were frozen and
        # which treatments were off are not tensors, so the events so far are applied again
        for event in self.recipe.events:
            if event.step <= state.global_step and event not in self.recipe.applied:
                apply_event(self.ctx.model, event)
                self.recipe.applied.append(event)

    def on_step_begin(self, args, state, control, **kwargs):
        for norm in self._live():
            norm.observing = True

    def on_step_end(self, args, state, control, **kwargs):
        live = self._live()
        for norm in live:
            norm.observing = False
        average_over_ranks(live)
        # an evaluation logs its loss, and logging clears control.should_log: without putting
        # it back, this step's training loss would never be logged
        should_log = control.should_log
        for event in (e for e in self.recipe.events if e.step == state.global_step):
            self.ctx.evaluate(f"before {event.target}")
            apply_event(self.ctx.model, event)
            self.recipe.applied.append(event)
            self.ctx.evaluate(f"after {event.target}")
        control.should_log = should_log
        return control
