"""The Normalization interface: norm modules, and surgery on a model's norm layers.

Norm layers are found structurally: ``nn.LayerNorm``, ``nn.RMSNorm`` and model
classes whose name ends in ``LayerNorm``/``RMSNorm`` (``LlamaRMSNorm``...).
Other modules whose class name mentions ``Norm`` are reported as unsupported
rather than skipped silently. A module that surgery installed and that keeps the
original norm inside it marks itself with ``tokensmith_replacement = True``; its
children are not reported again.

Each found layer also says what a replacement must respect: the ``normalized_shape``
it normalizes over (more than the last dimension for ``nn.LayerNorm((4, 8))``), and
its ``weight_offset``, 1.0 for the ``(1 + weight) ⊙ norm(x)`` convention of Gemma's
RMSNorm (and Qwen3-Next's...), 0.0 for the usual ``weight ⊙ norm(x)``.
The offset is found by a probe rather than a list of class names, so new model
classes are covered: the module's forward is run (with ``torch.func.functional_call``;
the module is left as it was and none of its hooks run, also on the meta device)
with its weight and bias set to zero on an input of mean 0
and mean square 1 over the normalized dimensions, where both LayerNorm and RMSNorm
give back the input; a ``weight ⊙ norm(x)`` layer then outputs zeros, a
``(1 + weight) ⊙ norm(x)`` layer outputs the input itself.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from typing import Any

import attrs

from .errors import SurgeryError
from .records import Change, ModelReport


def _as_shape(value: Any) -> tuple[int, ...]:
    return (int(value),) if isinstance(value, int) else tuple(int(v) for v in value)


@attrs.frozen
class NormLayer:
    """A norm layer of a model: where it is, what it computes, what a replacement must respect.

    ``dim`` is the size of the last normalized dimension; ``normalized_shape`` all of them
    (``(dim,)`` for a norm over the last dimension). ``weight_offset`` is the constant added to
    the weight to make the gain: ``γ = weight_offset + weight`` (1.0 for Gemma-style RMSNorm).
    """

    path: str
    module: Any = attrs.field(eq=False, repr=False)
    kind: str  # "layernorm" | "rmsnorm"
    dim: int
    eps: float
    normalized_shape: tuple[int, ...] = attrs.field(
        default=attrs.Factory(lambda self: (self.dim,), takes_self=True), converter=_as_shape)
    weight_offset: float = 0.0

    @property
    def last_dim_only(self) -> bool:
        """Whether the layer normalizes over the last dimension alone."""
        return len(self.normalized_shape) == 1

    def require_last_dim(self, component: str, hint: str | None = None) -> None:
        """Raise :class:`SurgeryError` when the layer normalizes over more than its last
        dimension, which a replacement over ``dim`` channels would silently change."""
        if not self.last_dim_only:
            raise SurgeryError(
                f"{self.path} ({type(self.module).__name__}) normalizes over the last "
                f"{len(self.normalized_shape)} dimensions {self.normalized_shape}; this surgery "
                "replaces norms over the last dimension only", component=component,
                hint=hint or "leave this layer out of the surgery")

    def gain(self) -> Any:
        """The layer's effective gain ``weight_offset + weight`` (detached), or ``None`` without a weight."""
        weight = getattr(self.module, "weight", None)
        if weight is None:
            return None
        weight = weight.detach()
        return weight + self.weight_offset if self.weight_offset else weight


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


def _shape_eps(module: Any) -> tuple[tuple[int, ...], float]:
    shape = getattr(module, "normalized_shape", None)
    weight = getattr(module, "weight", None)
    if shape is not None:
        shape = _as_shape(shape)
    elif weight is not None:
        shape = tuple(weight.shape)
    shape = shape or (0,)
    eps = getattr(module, "eps", None)
    if eps is None:
        eps = getattr(module, "variance_epsilon", 1e-6)
    return shape, float(eps)


def _probe_weight_offset(module: Any, normalized_shape: tuple[int, ...]) -> float:
    """1.0 when ``module`` computes ``(1 + weight) ⊙ norm(x)``, else 0.0 (see the module docstring).

    A module whose forward fails on the probe input, or that gives neither answer, counts as 0.0.
    """
    import torch
    from torch.func import functional_call

    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or tuple(weight.shape) != normalized_shape:
        return 0.0
    device = torch.device("cpu") if weight.device.type == "meta" else weight.device
    state = {}
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if name in ("weight", "bias") or tensor.device.type == "meta":
            state[f"norm.{name}"] = torch.zeros(tensor.shape, dtype=tensor.dtype, device=device)
    dims = tuple(range(1, len(normalized_shape) + 1))
    x = torch.randn((2, *normalized_shape), generator=torch.Generator().manual_seed(0))
    x = x - x.mean(dims, keepdim=True)
    x = (x / x.pow(2).mean(dims, keepdim=True).sqrt()).to(device, weight.dtype)
    try:
        with torch.no_grad():
            y = functional_call(_probe_module()(module), state, (x,))
    except Exception:  # a probe: a module that cannot run it keeps the usual convention
        return 0.0
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        return 0.0
    return 1.0 if torch.allclose(y.float(), x.float(), rtol=0.05, atol=0.05) else 0.0


@functools.cache
def _probe_module() -> Any:
    import torch.nn as nn

    class Probe(nn.Module):
        """Calls ``norm.forward`` directly, so the probe runs none of the norm's hooks."""

        def __init__(self, norm: Any) -> None:
            super().__init__()
            self.norm = norm

        def forward(self, x: Any) -> Any:
            return self.norm.forward(x)

    return Probe


def find_norm_layers(model: Any) -> tuple[list[NormLayer], list[str]]:
    """``(supported, unsupported)``: recognised norm layers, and paths + classes of
    other ``*Norm*`` modules that surgery does not know how to replace. A recognised layer
    over several dimensions, or with a ``(1 + weight)`` gain, is reported in ``supported`` with
    its ``normalized_shape`` and ``weight_offset``: each provider refuses or handles it."""
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
            shape, eps = _shape_eps(module)
            supported.append(NormLayer(path, module, kind, shape[-1], eps, shape,
                                       _probe_weight_offset(module, shape)))
        elif "norm" in type(module).__name__.lower() and not list(module.children()):
            unsupported.append(f"{path} ({type(module).__name__})")
    return supported, unsupported


def replace_module(model: Any, path: str, new: Any) -> Any:
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, attr)
    setattr(parent, attr, new)
    return old


#: Address alignment (bytes) a copy keeps from its original: the widest SIMD load (AVX-512) and
#: the CPU allocator's own alignment.
_ALIGNMENT = 64


def copy_model(model: Any) -> Any:
    """``copy.deepcopy(model)`` whose tensors sit at the same address modulo 64 bytes as the original's.

    Weights loaded from a file can start at any 8-byte offset, while a fresh copy is 64-byte
    aligned; BLAS then takes another path for a one-row matrix product, and the copy of SmolLM2
    differed from the original by up to 2.7e-5 on one-token forwards. Each tensor of the copy
    that owns its storage and sits at another offset is moved to one that matches.
    """
    import copy

    import torch

    twin = copy.deepcopy(model)
    pairs = zip([*model.parameters(), *model.buffers()], [*twin.parameters(), *twin.buffers()], strict=True)
    for original, tensor in pairs:
        if tensor.layout != torch.strided or tensor.device.type == "meta":
            continue
        delta = (original.data_ptr() - tensor.data_ptr()) % _ALIGNMENT
        size = tensor.numel() * tensor.element_size()
        if not delta or not tensor.is_contiguous() or tensor.untyped_storage().nbytes() != size:
            continue
        block = torch.empty(size + _ALIGNMENT, dtype=torch.uint8, device=tensor.device)
        start = (original.data_ptr() - block.data_ptr()) % _ALIGNMENT
        if start % tensor.element_size():
            continue
        moved = block[start:start + size].view(tensor.dtype).view(tensor.shape)
        moved.copy_(tensor.data)
        tensor.data = moved
    return twin


class NormalizationProvider(ABC):
    """``make`` builds a norm module; ``replace`` swaps a model's norm layers for it."""

    name: str = "normalization"

    @abstractmethod
    def make(self, layer: NormLayer) -> Any:
        """A module replacing ``layer`` (its ``dim``, ``eps``, ``kind``, ``normalized_shape``,
        ``weight_offset`` and original ``module``); raise :class:`SurgeryError` for a layer it
        cannot replace faithfully (``layer.require_last_dim(...)``)."""

    def select(self, layers: list[NormLayer]) -> list[NormLayer]:
        """Which of the found layers to replace (default: all)."""
        return layers

    def replace(self, model: Any, *, inplace: bool = True) -> tuple[Any, ModelReport]:
        """Replace the selected norm layers. ``inplace=False`` works on one copy (:func:`copy_model`).
        Every replacement is made before the first is installed, so a layer ``make`` refuses
        leaves the model unchanged."""
        supported, unsupported = find_norm_layers(model)
        if not supported:
            found = ", ".join(unsupported) or "no module with 'Norm' in its class name"
            raise SurgeryError(
                f"no recognised norm layer (LayerNorm/RMSNorm) in {type(model).__name__}; found: {found}",
                component=f"normalization '{self.name}'",
                hint="this provider replaces LayerNorm and RMSNorm layers only")
        if not inplace:
            model = copy_model(model)
            supported, _ = find_norm_layers(model)
        made = [(layer, self.make(layer)) for layer in self.select(supported)]
        changes = []
        for layer, new in made:
            if new is layer.module:
                continue
            replace_module(model, layer.path, new)
            detail = f"dim={layer.dim}"
            if layer.weight_offset:
                detail += f", gain = {layer.weight_offset:g} + weight"
            changes.append(Change(layer.path, type(layer.module).__name__, type(new).__name__, detail))
        notes = [f"unsupported norm modules left as they are: {', '.join(unsupported)}"] \
            if unsupported else []
        return model, ModelReport(f"normalization '{self.name}'", tuple(changes), tuple(notes))
