"""Masked BatchNorm over tokens: the baseline PowerNorm is compared against (Shen et al.,
2020, arXiv 2003.07845, Sec. 3: "BN" in Tables 1-2). Per-channel mean and variance over
the non-pad tokens of the batch in training (pads zeroed first, whatever they hold); running
statistics in eval mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tokensmith import InputError

from .padding_mask import PaddingMask
from .power_norm import masked_token_mean, zero_pads

if TYPE_CHECKING:
    from .surgery import BatchNormProvider


class MaskedBatchNorm(nn.Module):
    """BN over the last dimension of ``(..., dim)`` inputs, statistics over real tokens only, with
    the hyperparameters of ``settings`` (a :class:`~tokensmith_powernorm.surgery.BatchNormProvider`).
    Running statistics follow ``nn.BatchNorm1d``: momentum-weighted, unbiased variance."""

    def __init__(self, dim: int, settings: BatchNormProvider, *, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.dim, self.momentum, self.eps = dim, settings.momentum, settings.eps
        self.weight = nn.Parameter(torch.ones(dim, **kw)) if settings.affine else None
        self.bias = nn.Parameter(torch.zeros(dim, **kw)) if settings.affine else None
        self.register_buffer("running_mean", torch.zeros(dim, **kw))
        self.register_buffer("running_var", torch.ones(dim, **kw))
        self.padding_mask = PaddingMask()

    def extra_repr(self) -> str:
        return f"{self.dim}, momentum={self.momentum}, eps={self.eps}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mask = self.padding_mask.token_mask(x, component="normalization 'batchnorm'")
            x = zero_pads(x, mask)
            count = x[..., 0].numel() if mask is None else int(mask.sum())
            if count < 2:
                raise InputError("batch normalization in training needs more than one real token "
                                 f"per batch, got {count}", component="normalization 'batchnorm'",
                                 hint="use a larger batch, or eval mode")
            mean = masked_token_mean(x, mask)
            var = masked_token_mean((x - mean).pow(2), mask)
            with torch.no_grad():
                unbiased = var * count / (count - 1)
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        z = (x - mean) / torch.sqrt(var + self.eps)
        return z if self.weight is None else z * self.weight + self.bias
