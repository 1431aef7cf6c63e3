"""SRMSNorm (Simple RMSNorm) and norm surgery with it.

TransNormerLLM, Qin et al., arXiv 2307.14995, section 3.4:

    SRMSNorm(x) = x / (‖x‖₂ / √d)

RMSNorm without the learnable gain, so it has no parameters and its output has
RMS exactly 1 (up to ``eps``, which only matters for near-zero inputs: here
y = x · (mean(x²) + eps)^{−1/2}).
"""

from __future__ import annotations

import typing
from typing import Any, Literal

import attrs
import torch
from torch import nn

from tokensmith import (
    Change,
    ModelReport,
    NormalizationProvider,
    NormLayer,
    SurgeryError,
    find_norm_layers,
    non_negative,
)

from .config import as_tuple

NormKind = Literal["rmsnorm", "layernorm"]
NORM_KINDS: tuple[str, ...] = typing.get_args(NormKind)


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
    """What the replaced layer had that SRMSNorm does not: its gain (``1 + weight`` for a
    Gemma-style norm), bias, mean-centring."""
    parts = []
    gain = layer.gain()
    if gain is not None:
        parts.append(f"gain dropped (mean |g - 1| = {float((gain.float() - 1).abs().mean()):.3g})")
    if getattr(layer.module, "bias", None) is not None:
        parts.append("bias dropped")
    if layer.kind == "layernorm":
        parts.append("no mean-centring")
    return "; ".join(parts)


def _kinds(instance, attribute, value) -> None:
    if not value:
        raise ValueError(f"{attribute.name} is empty; choose from {list(NORM_KINDS)}")
    bad = [k for k in value if k not in NORM_KINDS]
    if bad:
        raise ValueError(f"{attribute.name} {bad} are not norm kinds; choose from {list(NORM_KINDS)}")


@attrs.define
class SRMSNormalization(NormalizationProvider):
    """Replaces a model's RMSNorm/LayerNorm layers (``kinds``) with SRMSNorm.

    SRMSNorm has no gain, so a pretrained model loses what its gains (and
    LayerNorm biases) learned: the report says so for every layer (for a Gemma-style
    norm the gain is ``1 + weight``), and the model needs fine-tuning afterwards. The
    paper trains with SRMSNorm from scratch. A norm over more than the last dimension
    (``nn.LayerNorm((4, 8))``) is refused: SRMSNorm would normalize each row instead.
    """

    name = "srmsnorm"

    kinds: tuple[NormKind, ...] = attrs.field(default=NORM_KINDS, converter=as_tuple, validator=_kinds,
                                              metadata={"doc": "which kinds of norm layers to replace"})
    eps: float | None = attrs.field(default=None, validator=attrs.validators.optional(non_negative),
                                    metadata={"doc": "SRMSNorm epsilon; unset: each replaced layer's own"})

    def select(self, layers: list[NormLayer]) -> list[NormLayer]:
        return [layer for layer in layers if layer.kind in self.kinds]

    def make(self, layer: NormLayer) -> SRMSNorm:
        layer.require_last_dim(f"normalization '{self.name}'",
                               hint="SRMSNorm normalizes the last dimension; subclass SRMSNormalization "
                                    "and override select(layers) to leave this layer out")
        return SRMSNorm(layer.dim, layer.eps if self.eps is None else self.eps)

    def replace(self, model: Any, *, inplace: bool = True) -> tuple[Any, ModelReport]:
        found = {layer.path: layer for layer in find_norm_layers(model)[0]}
        kept = [p for p, layer in found.items() if layer.kind not in self.kinds]
        if found and len(kept) == len(found):
            kinds = sorted({layer.kind for layer in found.values()})
            raise SurgeryError(f"{type(model).__name__} has no norm layer of kinds {list(self.kinds)} "
                               f"(it has {kinds})", component=f"normalization '{self.name}'",
                               hint=f"set kinds = {kinds}")
        model, report = super().replace(model, inplace=inplace)
        changes = tuple(Change(c.path, c.before, c.after, f"{c.detail}; {_dropped(found[c.path])}")
                        for c in report.changes)
        notes = report.notes + ((f"kept {len(kept)} layer(s) of kinds not selected: {', '.join(kept)}",)
                                if kept else ())
        return model, ModelReport(report.component, changes, notes)
