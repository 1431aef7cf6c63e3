"""Update-selective merging (DLER, Liu et al., 2025, arXiv 2510.15110, section on merging).

The DLER model θ_DLER was trained from θ_base; the merge keeps only a selected part of the
update Δ = θ_DLER − θ_base and adds it back to θ_base, which recovers the base model's accuracy
while keeping most of the shorter outputs. The selection here is per tensor, by magnitude: the
``keep`` share of Δ's entries with the largest |Δ| (ties broken by position) are kept, the rest
set to 0; ``rescale`` optionally restores the tensor's update mass. The paper's exact selection
rule could not be read where this was built: magnitude top-k is the brief's reading of it, and
the README says so.

- keep = 1 gives θ_DLER exactly, keep = 0 gives θ_base exactly (entries are copied, not
  recomputed as θ_base + Δ, so there is no rounding);
- :class:`UpdateSelectiveMerge` is also a recipe (``dler-merge``) and its :meth:`callback` a
  ``TrainerCallback`` for any transformers/TRL trainer: θ_base is the model when training starts,
  the merge happens when it ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from tokensmith import ConfigError, InputError, Recipe, unit_interval

__all__ = ["UpdateSelectiveMerge", "update_selective_merge"]


def _selected(delta: Any, keep: float) -> Any:
    """Bool mask of the round(keep·n) entries of ``delta`` with the largest |Δ|."""
    import torch

    flat = delta.reshape(-1).abs()
    k = int(round(keep * flat.numel()))
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=delta.device)
    if k >= flat.numel():
        mask[:] = True
    elif k > 0:
        # a stable sort breaks ties by position, so the selection is deterministic
        order = torch.sort(flat.float(), descending=True, stable=True).indices[:k]
        mask[order] = True
    return mask.reshape(delta.shape)


def update_selective_merge(
    base: Mapping[str, Any], tuned: Mapping[str, Any], keep: float, rescale: Literal["none", "l1"] = "none"
) -> dict[str, Any]:
    """θ_base + the selected part of Δ = θ_tuned − θ_base, tensor by tensor (state dicts of one
    architecture). ``rescale="l1"`` multiplies the kept update by ‖Δ‖₁ / ‖Δ_kept‖₁ so each tensor
    keeps its update mass. Non-floating tensors (buffers of ints) are taken from ``tuned``."""
    import torch

    if not 0 <= keep <= 1:
        raise ConfigError(f"keep must be in [0, 1], got {keep}", component="update-selective merge")
    if rescale not in ("none", "l1"):
        raise ConfigError(
            f"rescale must be 'none' or 'l1', got {rescale!r}", component="update-selective merge"
        )
    if set(base) != set(tuned):
        missing = sorted(set(base) ^ set(tuned))[:5]
        raise InputError(
            f"the two models have different tensors (first: {missing})",
            component="update-selective merge",
            hint="merge a model into its own base",
        )
    merged = {}
    for name, b in base.items():
        t = tuned[name]
        if tuple(b.shape) != tuple(t.shape):
            raise InputError(
                f"{name}: base {tuple(b.shape)} vs tuned {tuple(t.shape)}",
                component="update-selective merge",
                hint="merge a model into its own base",
            )
        if not torch.is_floating_point(t):
            merged[name] = t.clone()
            continue
        delta = t.to(b.dtype) - b
        mask = _selected(delta, keep)
        scale = 1.0
        if rescale == "l1" and mask.any() and not mask.all():
            kept = delta[mask].abs().sum()
            scale = float(delta.abs().sum() / kept) if kept > 0 else 1.0
        if scale == 1.0:
            merged[name] = torch.where(mask, t.to(b.dtype), b)
        else:
            merged[name] = torch.where(mask, b + scale * delta, b)
    return merged


@attrs.define
class UpdateSelectiveMerge(Recipe):
    """Recipe ``dler-merge``: remembers θ_base when training starts and, when it ends, replaces
    the trained weights by :func:`update_selective_merge` (θ_base, θ_trained, keep)."""

    name = "dler-merge"
    keep: float = attrs.field(
        default=0.5,
        validator=unit_interval,
        metadata={"doc": "share of each tensor's update entries kept (largest |Δ|)"},
    )
    rescale: Literal["none", "l1"] = attrs.field(
        default="none",
        metadata={
            "doc": "'l1': scale the kept update to the tensor's full update mass; 'none': keep it as is"
        },
    )

    def merge(self, base: Mapping[str, Any], tuned: Mapping[str, Any]) -> dict[str, Any]:
        return update_selective_merge(base, tuned, self.keep, self.rescale)

    def callback(self) -> Any:
        """A ``transformers.TrainerCallback`` doing the merge around any trainer's run (TRL's too)."""
        from transformers import TrainerCallback

        recipe = self

        class MergeIntoBase(TrainerCallback):
            base: dict[str, Any] | None = None

            def on_train_begin(self, args, state, control, model=None, **kwargs):
                self.base = {k: v.detach().clone() for k, v in model.state_dict().items()}

            def on_train_end(self, args, state, control, model=None, **kwargs):
                import torch

                merged = recipe.merge(self.base, model.state_dict())
                with torch.no_grad():
                    model.load_state_dict(merged)

        return MergeIntoBase()

    def callbacks(self, ctx: Any) -> list[Any]:
        return [self.callback()]
