"""Norm surgery: swap a model's LayerNorm/RMSNorm layers for PowerNorm or masked BatchNorm
(Shen et al., 2020, arXiv 2003.07845) and route the model's attention mask to them.

Each provider is the one declaration of its hyperparameters (the ``[normalization]``
parameters of a pipeline); the modules it builds read them from it. Defaults are those of
the PowerNorm reference implementation: eps 1e-5, alpha_fwd = alpha_bkw = 0.9, 10,000
warm-up iterations, one pre-scaling group.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import attrs
import torch

from tokensmith import (
    ConfigError,
    ModelReport,
    NormalizationProvider,
    NormLayer,
    non_negative_int,
    positive,
    positive_int,
    unit_interval,
)

from .batch_norm import MaskedBatchNorm
from .padding_mask import attach_padding_mask
from .power_norm import PowerNorm

_bool = attrs.validators.instance_of(bool)


def _copy_affine(new: torch.nn.Module, layer: NormLayer) -> None:
    """Start γ (and β) from the replaced layer, so a pretrained model keeps its learned gains.
    γ is the layer's effective gain: ``1 + weight`` for a Gemma-style norm (``layer.weight_offset``)."""
    with torch.no_grad():
        for name, source in (("weight", layer.gain()), ("bias", getattr(layer.module, "bias", None))):
            target = getattr(new, name, None)
            if isinstance(source, torch.Tensor) and target is not None and source.shape == target.shape:
                target.copy_(source)


def _like(layer: NormLayer) -> dict[str, Any]:
    reference = next(iter(layer.module.parameters()), None)
    if reference is None:
        return {}
    return {"device": reference.device, "dtype": reference.dtype}


class _MaskedNormProvider(NormalizationProvider):
    @abstractmethod
    def module(self, dim: int, *, device: Any = None, dtype: Any = None) -> torch.nn.Module:
        """A new norm module over ``dim`` channels with this provider's hyperparameters."""

    def make(self, layer: NormLayer) -> torch.nn.Module:
        layer.require_last_dim(f"normalization '{self.name}'",
                               hint="batch-statistic norms keep one statistic per channel of the last "
                                    "dimension; subclass the provider and override select(layers) to "
                                    "leave this layer out")
        module = self.module(layer.dim, **_like(layer))
        if self.copy_affine:
            _copy_affine(module, layer)
        return module.train(layer.module.training)

    def replace(self, model: Any, *, inplace: bool = True) -> tuple[Any, ModelReport]:
        model, report = super().replace(model, inplace=inplace)
        attach_padding_mask(model)
        note = ("batch statistics exclude pad tokens: the attention_mask of each model(...) call "
                "reaches the new layers through forward hooks on the model")
        return model, attrs.evolve(report, notes=(*report.notes, note))


@attrs.define
class PowerNormProvider(_MaskedNormProvider):
    """Replaces every LayerNorm/RMSNorm with :class:`PowerNorm`."""

    name = "powernorm"

    alpha_fwd: float = attrs.field(default=0.9, validator=unit_interval, metadata={
        "doc": "EMA factor of the running quadratic mean (forward)"})
    alpha_bkw: float = attrs.field(default=0.9, validator=unit_interval, metadata={
        "doc": "EMA factor of the backward correction (1.0 disables the correction)"})
    warmup_iters: int = attrs.field(default=10_000, validator=non_negative_int, metadata={
        "doc": "training iterations normalised by batch statistics before the running statistic takes over"})
    eps: float = attrs.field(default=1e-5, validator=positive, metadata={"doc": "added to the statistic"})
    affine: bool = attrs.field(default=True, validator=_bool, metadata={"doc": "learn γ and β"})
    prescale: bool = attrs.field(default=True, validator=_bool, metadata={
        "doc": "divide each token by its RMS over group_num channel groups first (GroupScaling1D)"})
    group_num: int = attrs.field(default=1, validator=positive_int, metadata={
        "doc": "channel groups of the pre-scaling; must divide the width"})
    copy_affine: bool = attrs.field(default=True, validator=_bool, metadata={
        "doc": "start γ (and β) from the replaced layer's weight (and bias)"})

    def module(self, dim: int, *, device: Any = None, dtype: Any = None) -> PowerNorm:
        return PowerNorm(dim, self, device=device, dtype=dtype)

    def make(self, layer: NormLayer) -> torch.nn.Module:
        try:
            return super().make(layer)
        except ConfigError as exc:
            raise ConfigError(f"{exc.message} of {layer.path}", component=exc.component,
                              hint=exc.hint) from None


@attrs.define
class BatchNormProvider(_MaskedNormProvider):
    """Replaces every LayerNorm/RMSNorm with :class:`MaskedBatchNorm` (mean and variance over the
    non-pad tokens; running statistics, updated with ``momentum``, in eval mode)."""

    name = "batchnorm"

    momentum: float = attrs.field(default=0.1, validator=unit_interval, metadata={
        "doc": "update factor of the running statistics"})
    eps: float = attrs.field(default=1e-5, validator=positive, metadata={"doc": "added to the variance"})
    affine: bool = attrs.field(default=True, validator=_bool, metadata={"doc": "learn γ and β"})
    copy_affine: bool = attrs.field(default=True, validator=_bool, metadata={
        "doc": "start γ (and β) from the replaced layer's weight (and bias)"})

    def module(self, dim: int, *, device: Any = None, dtype: Any = None) -> MaskedBatchNorm:
        return MaskedBatchNorm(dim, self, device=device, dtype=dtype)
