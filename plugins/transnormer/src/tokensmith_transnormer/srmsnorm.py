"""SRMSNorm (Simple RMSNorm) and norm surgery with it.

TransNormerLLM, Qin et al., arXiv 2307.14995, section 3.4:

    SRMSNorm(x) = x / (‖x‖₂ / √d)

RMSNorm without the learnable gain, so it has no parameters and its output has
RMS exactly 1 (up to ``eps``, which only matters for near-zero inputs: here
y = x · (mean(x²) + eps)^{−1/2}).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tokensmith import (
    BuildContext,
    Change,
    ModelReport,
    NormalizationProvider,
    NormLayer,
    SurgeryError,
    find_norm_layers,
)

from .config import SRMSNormConfig


class SRMSNorm(nn.Module):
    """Parameter-free RMS normalisation over the last dimension."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


def _dropped(layer: NormLayer) -> str:
    """What the replaced layer had that SRMSNorm does not: its gain, bias, mean-centring."""
    parts = []
    weight = getattr(layer.module, "weight", None)
    if weight is not None:
        parts.append(f"gain dropped (mean |g - 1| = {float((weight.detach() - 1).abs().mean()):.3g})")
    if getattr(layer.module, "bias", None) is not None:
        parts.append("bias dropped")
    if layer.kind == "layernorm":
        parts.append("no mean-centring")
    return "; ".join(parts)


class SRMSNormalization(NormalizationProvider):
    """Replaces a model's RMSNorm/LayerNorm layers (``kinds``) with SRMSNorm.

    SRMSNorm has no gain, so a pretrained model loses what its gains (and
    LayerNorm biases) learned: the report says so for every layer, and the model
    needs fine-tuning afterwards. The paper trains with SRMSNorm from scratch.
    """

    name = "srmsnorm"

    def __init__(self, kinds: tuple[str, ...] = ("rmsnorm", "layernorm"), eps: float | None = None) -> None:
        self.config = SRMSNormConfig(kinds, eps)

    @classmethod
    def from_config(cls, config: SRMSNormConfig, ctx: BuildContext) -> SRMSNormalization:
        return cls(config.kinds, config.eps)

    def select(self, layers: list[NormLayer]) -> list[NormLayer]:
        return [layer for layer in layers if layer.kind in self.config.kinds]

    def make(self, layer: NormLayer) -> SRMSNorm:
        eps = layer.eps if self.config.eps is None else self.config.eps
        return SRMSNorm(layer.dim, eps)

    def replace(self, model: Any, *, inplace: bool = True) -> tuple[Any, ModelReport]:
        found = {layer.path: layer for layer in find_norm_layers(model)[0]}
        kept = [p for p, layer in found.items() if layer.kind not in self.config.kinds]
        if found and len(kept) == len(found):
            kinds = sorted({layer.kind for layer in found.values()})
            raise SurgeryError(f"{type(model).__name__} has no norm layer of kinds {list(self.config.kinds)} "
                               f"(it has {kinds})", component=f"normalization '{self.name}'",
                               plugin="tokensmith-transnormer",
                               hint=f"set kinds = {kinds}")
        model, report = super().replace(model, inplace=inplace)
        changes = tuple(Change(c.path, c.before, c.after, f"{c.detail}; {_dropped(found[c.path])}")
                        for c in report.changes)
        notes = report.notes + ((f"kept {len(kept)} layer(s) of kinds not selected: {', '.join(kept)}",)
                                if kept else ())
        return model, ModelReport(report.component, changes, notes)
