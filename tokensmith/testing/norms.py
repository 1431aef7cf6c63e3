"""Norm layers for tests of norm surgery: the Gemma-style ``(1 + w)`` RMSNorm that a
provider must handle explicitly (never silently change)."""

from __future__ import annotations

import torch
from torch import nn


class OffsetRMSNorm(nn.Module):
    """Gemma-style RMSNorm, ``(1 + w) ⊙ x / rms(x)``, with ``w`` initialised to zero."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim))
        self.eps = 1e-6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (1 + self.weight) * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


class TwoDimNormBlock(nn.Module):
    """A block whose ``norm`` is ``nn.LayerNorm((4, 8))`` (over the last two dimensions), next
    to an ordinary ``ln`` over 8 channels: surgery must refuse it, not swap in a 1-D norm."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.ln = nn.LayerNorm(8)
        self.norm = nn.LayerNorm((4, 8))


def gemma_style_norms(dim: int = 8) -> list[nn.Module]:
    """An :class:`OffsetRMSNorm`, and transformers' own ``GemmaRMSNorm`` where it exists."""
    norms: list[nn.Module] = [OffsetRMSNorm(dim)]
    try:
        from transformers.models.gemma.modeling_gemma import GemmaRMSNorm
    except ImportError:
        return norms
    return [*norms, GemmaRMSNorm(dim)]
