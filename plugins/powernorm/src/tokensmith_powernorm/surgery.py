"""Norm surgery: swap a model's LayerNorm/RMSNorm layers for PowerNorm or masked BatchNorm
(Shen et al., 2020, arXiv 2003.07845) and route the model's attention mask to them."""

from __future__ import annotations

from typing import Any

import attrs
import torch

from tokensmith import BuildContext, ModelReport, NormalizationProvider, NormLayer
from tokensmith.core.errors import ConfigError

from .batch_norm import MaskedBatchNorm
from .config import BatchNormConfig, PowerNormConfig
from .padding_mask import attach_padding_mask
from .power_norm import PowerNorm


def _copy_affine(new: torch.nn.Module, old: Any) -> None:
    """Start γ (and β) from the replaced layer, so a pretrained model keeps its learned gains."""
    with torch.no_grad():
        for name in ("weight", "bias"):
            source, target = getattr(old, name, None), getattr(new, name, None)
            if isinstance(source, torch.Tensor) and target is not None and source.shape == target.shape:
                target.copy_(source)


def _like(layer: NormLayer) -> dict[str, Any]:
    reference = next(iter(layer.module.parameters()), None)
    if reference is None:
        return {}
    return {"device": reference.device, "dtype": reference.dtype}


class _MaskedNormProvider(NormalizationProvider):
    def replace(self, model: Any, *, inplace: bool = True) -> tuple[Any, ModelReport]:
        model, report = super().replace(model, inplace=inplace)
        attach_padding_mask(model)
        note = ("batch statistics exclude pad tokens: the attention_mask of each model(...) call "
                "reaches the new layers through forward hooks on the model")
        return model, attrs.evolve(report, notes=(*report.notes, note))


class PowerNormProvider(_MaskedNormProvider):
    """Replaces every LayerNorm/RMSNorm with :class:`PowerNorm`."""

    name = "powernorm"

    def __init__(self, config: PowerNormConfig | None = None, ctx: BuildContext | None = None) -> None:
        self.config = config or PowerNormConfig()

    def make(self, layer: NormLayer) -> PowerNorm:
        c = self.config
        try:
            module = PowerNorm(layer.dim, alpha_fwd=c.alpha_fwd, alpha_bkw=c.alpha_bkw,
                               warmup_iters=c.warmup_iters, eps=c.eps, affine=c.affine,
                               prescale=c.prescale, group_num=c.group_num, **_like(layer))
        except ConfigError as exc:
            raise ConfigError(f"{exc.message} of {layer.path}", component=exc.component, plugin=exc.plugin,
                              hint=exc.hint) from None
        if c.copy_affine:
            _copy_affine(module, layer.module)
        return module.train(layer.module.training)


class BatchNormProvider(_MaskedNormProvider):
    """Replaces every LayerNorm/RMSNorm with :class:`MaskedBatchNorm`."""

    name = "batchnorm"

    def __init__(self, config: BatchNormConfig | None = None, ctx: BuildContext | None = None) -> None:
        self.config = config or BatchNormConfig()

    def make(self, layer: NormLayer) -> MaskedBatchNorm:
        c = self.config
        module = MaskedBatchNorm(layer.dim, momentum=c.momentum, eps=c.eps, affine=c.affine, **_like(layer))
        if c.copy_affine:
            _copy_affine(module, layer.module)
        return module.train(layer.module.training)
