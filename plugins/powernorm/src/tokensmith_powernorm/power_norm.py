"""Power Normalization (PN): Shen, Yao, Gholami, Mahoney, Keutzer, "PowerNorm: Rethinking
Batch Normalization in Transformers", ICML 2020, arXiv 2003.07845 (Sec. 4, Algorithm 1).

PN is batch normalization over the tokens of a batch with three changes:
(i) no mean subtraction, the per-channel *quadratic mean* ψ²_B = mean_tokens(x²) is used;
(ii) after a warm-up, the forward pass divides by the *running* quadratic mean φ rather
than by the batch statistic; (iii) an approximate backward pass corrects the gradient for
the running statistic with a running estimate of mean(g̃·z). Pad tokens are excluded from
every statistic (see :mod:`.padding_mask`): in training they are set to 0 before anything
else, so a pad holding inf or NaN changes no statistic, no real token's output or gradient.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tokensmith import ConfigError

from .padding_mask import PaddingMask

if TYPE_CHECKING:
    from .surgery import PowerNormProvider


def masked_token_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per-channel mean over every token (all dimensions but the last) where ``mask`` is True.
    Masked tokens are selected out, not multiplied by 0, so an inf or NaN there (inf·0 = NaN)
    does not reach the mean."""
    flat = values.reshape(-1, values.shape[-1])
    if mask is None:
        return flat.mean(dim=0)
    keep = mask.reshape(-1, 1)
    return torch.where(keep, flat, 0).sum(dim=0) / keep.sum()


def zero_pads(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``x`` with every pad token (``mask`` False) set to 0. Done first in training, so whatever a
    pad holds (inf, NaN) reaches no statistic, no output and, through autograd, no gradient."""
    return x if mask is None else x.masked_fill(~mask.unsqueeze(-1), 0)


def group_scaling(x: torch.Tensor, group_num: int, eps: float) -> torch.Tensor:
    """Pre-scaling: divide each token by its RMS within each of ``group_num`` channel groups
    (the reference code's GroupScaling1D), so that PN's statistics see tokens of equal power."""
    groups = x.reshape(*x.shape[:-1], group_num, x.shape[-1] // group_num)
    moment2 = groups.pow(2).mean(dim=-1, keepdim=True)
    return (groups / torch.sqrt(moment2 + eps)).reshape(x.shape)


class ApproximateQuadraticNorm(torch.autograd.Function):
    """z = x / scale with Algorithm 1's approximate backward.

    Forward: ``scale`` is √(ψ²_B+ε) during warm-up and √(φ_{t-1}+ε) afterwards, and is a
    constant of the autograd graph. Backward, with g = ∂L/∂z (= γ ⊙ ∂L/∂y):
        g̃ = g − (1 − α_bkw) · Γ · z          (over real tokens; pads feed no statistic)
        Γ ← Γ + mean_tokens(g̃ · z)
        ∂L/∂x = g̃ / scale
    Writing c = (1 − α_bkw)·Γ, the update reads c ← c + (1 − α_bkw)(mean(g·z) − c·mean(z²)),
    an exponential average of mean(g·z) whenever mean(z²) ≈ 1: the term the exact gradient
    through batch statistics would subtract, estimated across iterations.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: torch.Tensor, mask: torch.Tensor | None,
                correction: torch.Tensor, alpha_bkw: float) -> torch.Tensor:
        z = x / scale
        ctx.save_for_backward(z, scale)
        # Γ is a running buffer read at backward time, not a saved activation.
        ctx.correction = correction
        ctx.mask = mask
        ctx.alpha_bkw = alpha_bkw
        return z

    @staticmethod
    def backward(ctx: Any, grad_z: torch.Tensor):
        z, scale = ctx.saved_tensors
        mask, correction = ctx.mask, ctx.correction
        shift = (1.0 - ctx.alpha_bkw) * correction * z
        if mask is not None:
            shift = torch.where(mask.unsqueeze(-1), shift, 0)
        corrected = grad_z - shift
        with torch.no_grad():
            correction.add_(masked_token_mean(corrected * z, mask))
        return corrected / scale, None, None, None, None


class PowerNorm(nn.Module):
    """PN over the last dimension of ``(..., dim)`` inputs (tokens × channels), with the
    hyperparameters of ``settings`` (a :class:`~tokensmith_powernorm.surgery.PowerNormProvider`).

    Training: statistics over the non-pad tokens of the batch (pads are zeroed first, so they
    output β and receive no gradient); eval: y = γ ⊙ x/√(φ+ε) + β,
    so each sample's output is independent of the rest of the batch.
    Buffers: ``running_phi`` (φ), ``grad_correction`` (Γ), ``iteration`` (t).
    """

    def __init__(self, dim: int, settings: PowerNormProvider, *, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        group_num = settings.group_num
        if dim % group_num:
            raise ConfigError(f"group_num={group_num} does not divide the channel count {dim}",
                              component="normalization 'powernorm'",
                              hint="use a group_num dividing the width")
        kw = {"device": device, "dtype": dtype}
        self.dim, self.alpha_fwd, self.alpha_bkw = dim, settings.alpha_fwd, settings.alpha_bkw
        self.warmup_iters, self.eps, self.prescale = settings.warmup_iters, settings.eps, settings.prescale
        self.group_num = group_num
        self.weight = nn.Parameter(torch.ones(dim, **kw)) if settings.affine else None
        self.bias = nn.Parameter(torch.zeros(dim, **kw)) if settings.affine else None
        self.register_buffer("running_phi", torch.ones(dim, **kw))
        self.register_buffer("grad_correction", torch.zeros(dim, **kw))
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long, device=device))
        self.padding_mask = PaddingMask()

    def extra_repr(self) -> str:
        return (f"{self.dim}, alpha_fwd={self.alpha_fwd}, alpha_bkw={self.alpha_bkw}, "
                f"warmup_iters={self.warmup_iters}, eps={self.eps}, prescale={self.prescale}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mask = self.padding_mask.token_mask(x, component="normalization 'powernorm'")
            x = zero_pads(x, mask)
            if self.prescale:
                x = group_scaling(x, self.group_num, self.eps)
            z = self._train_normalize(x, mask)
        else:
            if self.prescale:
                x = group_scaling(x, self.group_num, self.eps)
            z = x / torch.sqrt(self.running_phi + self.eps)
        return z if self.weight is None else z * self.weight + self.bias

    def _train_normalize(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            self.iteration += 1
            t = int(self.iteration)
            quadratic_mean = masked_token_mean(x.detach().pow(2), mask)  # ψ²_B
            statistic = quadratic_mean if t <= self.warmup_iters else self.running_phi.clone()
            scale = torch.sqrt(statistic + self.eps)
            self.update_running_phi(quadratic_mean, t)
        return ApproximateQuadraticNorm.apply(x, scale, mask, self.grad_correction, self.alpha_bkw)

    @torch.no_grad()
    def update_running_phi(self, quadratic_mean: torch.Tensor, t: int) -> None:
        """During warm-up φ first becomes the cumulative average of ψ²_B over the t batches so
        far; then, always, φ ← α_fwd·φ + (1 − α_fwd)·ψ²_B."""
        if t <= self.warmup_iters:
            self.running_phi.mul_((t - 1) / t).add_(quadratic_mean / t)
        self.running_phi.mul_(self.alpha_fwd).add_((1.0 - self.alpha_fwd) * quadratic_mean)
