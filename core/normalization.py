"""The Normalization interface: norm modules, and surgery on a model's norm layers.

Norm layers are found structurally: ``nn.LayerNorm``, ``nn.RMSNorm`` and model
classes whose name ends in ``LayerNorm``/``RMSNorm`` (``LlamaRMSNorm``...).
Other modules whose class name mentions ``Norm`` are reported as unsupported
rather than skipped silently. A module that surgery installed and that keeps the
original norm inside it marks itself with ``tokensmith_replacement = True``; its
children are not reported again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import attrs

from .errors import SurgeryError
from .records import Change, ModelReport


@attrs.frozen
class NormLayer:
    path: str
    module: Any = attrs.field(eq=False, repr=False)
    kind: str  # "layernorm" | "rmsnorm"
    dim: int
    eps: float


def norm_kind(module: Any) -> str | None:
    import torch.nn as nn

    if isinstance(module, nn.LayerNorm):
        return "layernorm"
    if isinstance(module, getattr(nn, "RMSNorm", ())):
        return "rmsnorm"
    name = type(module).__name__
    if name.endswith("RMSNorm"):
        return "rmsnorm"
    if name.endswith("LayerNorm"):
        return "layernorm"
    return None


def _dim_eps(module: Any) -> tuple[int, float]:
    weight = getattr(module, "weight", None)
    if weight is not None:
        dim = int(weight.shape[-1])
    else:
        shape = getattr(module, "normalized_shape", None) or (0,)
        dim = int(shape[-1])
    eps = getattr(module, "eps", None)
    if eps is None:
        eps = getattr(module, "variance_epsilon", 1e-6)
    return dim, float(eps)


def find_norm_layers(model: Any) -> tuple[list[NormLayer], list[str]]:
    """``(supported, unsupported)``: recognised norm layers, and paths + classes of
    other ``*Norm*`` modules that surgery does not know how to replace."""
    supported: list[NormLayer] = []
    unsupported: list[str] = []
    replaced: list[str] = []
    for path, module in model.named_modules():
        if any(path.startswith(prefix + ".") for prefix in replaced):
            continue
        if getattr(module, "tokensmith_replacement", False):
            replaced.append(path)
            continue
        kind = norm_kind(module)
        if kind is not None:
            dim, eps = _dim_eps(module)
            supported.append(NormLayer(path, module, kind, dim, eps))
        elif "norm" in type(module).__name__.lower() and not list(module.children()):
            unsupported.append(f"{path} ({type(module).__name__})")
    return supported, unsupported


def replace_module(model: Any, path: str, new: Any) -> Any:
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, attr)
    setattr(parent, attr, new)
    return old


class NormalizationProvider(ABC):
    """``make`` builds a norm module; ``replace`` swaps a model's norm layers for it."""

    name: str = "normalization"

    @abstractmethod
    def make(self, layer: NormLayer) -> Any:
        """A module replacing ``layer`` (its ``dim``, ``eps``, ``kind`` and original ``module``)."""

    def select(self, layers: list[NormLayer]) -> list[NormLayer]:
        """Which of the found layers to replace (default: all)."""
        return layers

    def replace(self, model: Any, *, inplace: bool = True) -> tuple[Any, ModelReport]:
        """Replace the selected norm layers. ``inplace=False`` works on one deep copy."""
        supported, unsupported = find_norm_layers(model)
        if not supported:
            found = ", ".join(unsupported) or "no module with 'Norm' in its class name"
            raise SurgeryError(
                f"no recognised norm layer (LayerNorm/RMSNorm) in {type(model).__name__}; found: {found}",
                component=f"normalization '{self.name}'",
                hint="this provider replaces LayerNorm and RMSNorm layers only")
        if not inplace:
            import copy

            model = copy.deepcopy(model)
            supported, _ = find_norm_layers(model)
        changes = []
        for layer in self.select(supported):
            new = self.make(layer)
            if new is layer.module:
                continue
            replace_module(model, layer.path, new)
            changes.append(Change(layer.path, type(layer.module).__name__, type(new).__name__,
                                  f"dim={layer.dim}"))
        notes = [f"unsupported norm modules left as they are: {', '.join(unsupported)}"] \
            if unsupported else []
        return model, ModelReport(f"normalization '{self.name}'", tuple(changes), tuple(notes))
