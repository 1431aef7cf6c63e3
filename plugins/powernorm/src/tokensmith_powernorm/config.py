"""Hyperparameters of PowerNorm and masked BatchNorm (attrs only: importing this imports no torch).

Defaults are those of the PowerNorm reference implementation (Shen et al., 2020,
arXiv 2003.07845): eps 1e-5, alpha_fwd = alpha_bkw = 0.9, 10,000 warm-up iterations,
one pre-scaling group.
"""

from __future__ import annotations

import attrs
from attrs import validators as v

_unit = [v.instance_of(float), v.ge(0.0), v.le(1.0)]


def _float(value):
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


@attrs.frozen
class PowerNormConfig:
    """``alpha_fwd``: EMA factor of the running quadratic mean (forward);
    ``alpha_bkw``: EMA factor of the backward correction (1.0 disables the correction);
    ``warmup_iters``: training iterations normalised by batch statistics before the
    running statistic takes over; ``eps``; ``affine``: learn γ and β;
    ``prescale``/``group_num``: divide each token by its RMS over ``group_num`` channel
    groups first (the reference code's GroupScaling1D); ``copy_affine``: start γ (and β)
    from the replaced layer's weight (and bias)."""

    alpha_fwd: float = attrs.field(default=0.9, converter=_float, validator=_unit)
    alpha_bkw: float = attrs.field(default=0.9, converter=_float, validator=_unit)
    warmup_iters: int = attrs.field(default=10_000, validator=[v.instance_of(int), v.ge(0)])
    eps: float = attrs.field(default=1e-5, converter=_float, validator=[v.instance_of(float), v.gt(0.0)])
    affine: bool = attrs.field(default=True, validator=v.instance_of(bool))
    prescale: bool = attrs.field(default=True, validator=v.instance_of(bool))
    group_num: int = attrs.field(default=1, validator=[v.instance_of(int), v.ge(1)])
    copy_affine: bool = attrs.field(default=True, validator=v.instance_of(bool))


@attrs.frozen
class BatchNormConfig:
    """Masked BatchNorm over tokens: per-channel mean and variance of the non-pad tokens;
    running statistics updated with ``momentum`` and used in eval mode."""

    momentum: float = attrs.field(default=0.1, converter=_float, validator=_unit)
    eps: float = attrs.field(default=1e-5, converter=_float, validator=[v.instance_of(float), v.gt(0.0)])
    affine: bool = attrs.field(default=True, validator=v.instance_of(bool))
    copy_affine: bool = attrs.field(default=True, validator=v.instance_of(bool))
