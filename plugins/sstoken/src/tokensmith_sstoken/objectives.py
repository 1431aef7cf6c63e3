"""ssToken as tokensmith components (Qin et al., ICLR 2026, arXiv 2510.18250).

- ``sstoken`` (objective, a :class:`tokensmith.TokenMask`): keeps the top ``ceil(ρ·R)`` response
  tokens of each sample by ssToken's combined score (see :mod:`tokensmith_sstoken.select`).
  Its history model θ_his is the frozen base model before SFT, as in the released code: a
  recipe builds the mask after loading the model, and the mask keeps a frozen copy of it; in
  Python, :meth:`SSToken.with_history` attaches one. The paper precomputes ℓ_his offline; a
  batch that carries ``history_losses`` (indexed like the labels) is used as it is, otherwise
  the frozen copy computes them in the same step (the same numbers, one extra no-grad forward).
- ``sstoken`` (recipe): the run setup the mask needs — eager attention with
  ``output_attentions`` (the semantic score reads the last layer's attention map) and the
  optimizer step, for the attention-only warm-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from tokensmith import (
    IncompatibleComponentsError,
    Recipe,
    TokenMask,
    non_negative_int,
    probability,
    unit_interval,
)

from .select import COMPONENT, keep_top, per_token_loss, sstoken_scores

#: a batch key with the history model's per-token losses, precomputed offline (indexed like labels)
HISTORY_LOSSES_KEY = "history_losses"


def _frozen_copy(model: Any) -> Any:
    import copy

    history = copy.deepcopy(model)
    history.eval()
    history.requires_grad_(False)
    return history


@attrs.define(eq=False)
class SSToken(TokenMask):
    """ssToken's token selection as a loss mask: per sample, the top ``ceil(ratio·R)`` of its R
    response tokens by ``gamma·minmax(REL) + (1-gamma)·a`` (REL: retrospective excess loss
    against the frozen history model; a: last-layer attention mass to the prompt). Before step
    ``warmup_steps`` only the attention score is used (the released code's warm-up)."""

    name = "sstoken"
    ratio: float = attrs.field(default=0.6, validator=probability,
                               metadata={"doc": "ρ, the share of each sample's response tokens "
                                         "kept, in (0, 1] (paper: 0.6)"})
    gamma: float = attrs.field(default=0.5, validator=unit_interval,
                               metadata={"doc": "γ, the weight of the normalised REL against the attention "
                                         "score, in [0, 1] (paper: 0.5)"})
    warmup_steps: int = attrs.field(default=0, validator=non_negative_int,
                                    metadata={"doc": "optimizer steps that use the attention score alone "
                                              "(γ = 0); counted by the `sstoken` recipe"})
    ctx: Any = attrs.field(default=None, repr=False, metadata={"doc": "the build context (its model is the "
                                                               "history model's source)"})
    step: int = attrs.field(default=0, init=False)
    _history: Any = attrs.field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        model = getattr(self.ctx, "model", None)
        if model is not None:
            self._history = _frozen_copy(model)

    def with_history(self, model: Any) -> SSToken:
        """Use a frozen copy of ``model`` (the base before SFT) as θ_his; returns self."""
        self._history = _frozen_copy(model)
        return self

    @property
    def history(self) -> Any:
        return self._history

    def history_losses(self, batch: Mapping[str, Any]) -> Any:
        """ℓ_his per label position: the batch's precomputed ``history_losses`` or the frozen
        history model's losses on this batch."""
        import torch

        given = batch.get(HISTORY_LOSSES_KEY) if hasattr(batch, "get") else None
        if given is not None:
            return given
        if self._history is None:
            raise IncompatibleComponentsError(
                "no history model: ssToken's REL needs the frozen base model's per-token losses",
                component=COMPONENT,
                hint="build the mask in a recipe (it copies the loaded model), call .with_history(model) "
                     f"before training, or give the batch '{HISTORY_LOSSES_KEY}'")
        labels = batch["labels"]
        device = labels.device
        if next(self._history.parameters()).device != device:
            self._history.to(device)
        kwargs = {"input_ids": batch["input_ids"].to(device)}
        if batch.get("attention_mask") is not None:
            kwargs["attention_mask"] = batch["attention_mask"].to(device)
        with torch.no_grad():
            out = self._history(**kwargs, output_attentions=False, use_cache=False)
        logits = out.logits if hasattr(out, "logits") else out[0]
        return per_token_loss(logits, labels)

    def attention(self, outputs: Any) -> Any:
        """The last layer's attention averaged over heads, (batch, length, length)."""
        attentions = getattr(outputs, "attentions", None)
        if not attentions:
            raise IncompatibleComponentsError(
                "the model's outputs hold no attention maps; ssToken's semantic score reads the last "
                "layer's attention", component=COMPONENT,
                hint="add [recipe] type = \"sstoken\" (eager attention, output_attentions), or run the model "
                     "with attn_implementation='eager' and config.output_attentions = True")
        return attentions[-1].detach().float().mean(dim=1)

    def __call__(self, batch: Mapping[str, Any], outputs: Any) -> Any:
        logits = outputs.logits if hasattr(outputs, "logits") else outputs
        gamma = 0.0 if self.step < self.warmup_steps else self.gamma
        scores, eligible = sstoken_scores(logits, batch["labels"], self.attention(outputs),
                                          self.history_losses(batch),
                                          response_mask=batch.get("response_mask"), gamma=gamma)
        return keep_top(scores, eligible, self.ratio)


def _sstoken_masks(objective: Any) -> list[SSToken]:
    masks = getattr(objective, "masks", ())
    return [m for m in masks if isinstance(m, SSToken)]


@attrs.define
class SSTokenRecipe(Recipe):
    """The run setup ssToken needs: the model's attention switched to eager with
    ``output_attentions`` (so ``outputs.attentions`` reach the mask), and a callback that tells
    every `sstoken` mask the optimizer step (its warm-up), restored exactly on resume."""

    name = "sstoken"

    def prepare(self, model: Any, ctx: Any) -> Any:
        if not hasattr(model, "config"):
            raise IncompatibleComponentsError(
                f"{type(model).__name__} has no config: the sstoken recipe needs a transformers model "
                "that can return attention maps", component="sstoken recipe")
        if hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation("eager")
        else:
            model.config._attn_implementation = "eager"
        model.config.output_attentions = True
        return model

    def callbacks(self, ctx: Any) -> list[Any]:
        from transformers import TrainerCallback

        class StepCounter(TrainerCallback):
            def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                for mask in _sstoken_masks(getattr(ctx.trainer, "objective", None)):
                    mask.step = state.global_step

        return [StepCounter()]
