"""How the padding mask reaches the masked norms of a model.

Batch-statistic norms (PowerNorm, masked BatchNorm; Shen et al., 2020, arXiv
2003.07845, Sec. 4) must compute their statistics over real tokens only, but a
norm layer is called with hidden states alone. One :class:`PaddingMask` is shared
by all masked norms of a model; a forward pre-hook on the model stores the
``attention_mask`` of each call in it (and a forward hook removes it afterwards),
so ``model(input_ids=..., attention_mask=...)`` needs nothing more. For models
called without an ``attention_mask`` argument, ``with mask.use(m): model(x)``
sets it explicitly. ``1``/``True`` marks a real token, ``0``/``False`` a pad.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tokensmith import InputError


class PaddingMask:
    """The mask of the forward call in progress (a stack, so nested calls restore it)."""

    def __init__(self) -> None:
        self._stack: list[Any] = []
        self._signature: inspect.Signature | None = None

    @property
    def current(self) -> Any:
        return self._stack[-1] if self._stack else None

    @contextmanager
    def use(self, mask: Any) -> Iterator[PaddingMask]:
        self._stack.append(mask)
        try:
            yield self
        finally:
            self._stack.pop()

    def _push_call_mask(self, module: Any, args: tuple, kwargs: dict) -> None:
        mask = kwargs.get("attention_mask")
        if mask is None and self._signature is not None and args:
            try:
                mask = self._signature.bind_partial(*args, **kwargs).arguments.get("attention_mask")
            except TypeError:
                mask = None
        self._stack.append(mask if mask is not None else self.current)

    def _pop_call_mask(self, module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        self._stack.pop()

    def token_mask(self, x: Any, component: str) -> Any:
        """A ``bool`` tensor of shape ``x.shape[:-1]`` (True = real token), or ``None`` when no
        mask is set (every token counts). A mask of any other shape is an error, never guessed."""
        mask = self.current
        if mask is None:
            return None
        if tuple(mask.shape) != tuple(x.shape[:-1]):
            raise InputError(
                f"attention mask of shape {tuple(mask.shape)} does not match hidden states "
                f"{tuple(x.shape)} (expected {tuple(x.shape[:-1])})", component=component,
                hint="pass a 2-D (batch, sequence) attention_mask for the tokens of this forward "
                     "call; training with a KV cache is not supported by batch-statistic norms")
        if not bool(mask.any()):
            raise InputError("the attention mask marks every token as padding; batch statistics "
                             "need at least one real token", component=component)
        return mask.to(device=x.device, dtype=bool)


def attach_padding_mask(model: Any) -> PaddingMask:
    """Give every masked norm of ``model`` one shared :class:`PaddingMask`, filled from the
    ``attention_mask`` argument of each ``model(...)`` call by forward hooks. The hooks are
    bound methods of the mask, so ``copy.deepcopy(model)`` routes to the copy's own mask."""
    holder = PaddingMask()
    for module in model.modules():
        if isinstance(getattr(module, "padding_mask", None), PaddingMask):
            module.padding_mask = holder
    try:
        holder._signature = inspect.signature(model.forward)
    except (TypeError, ValueError):
        holder._signature = None
    model.register_forward_pre_hook(holder._push_call_mask, with_kwargs=True)
    model.register_forward_hook(holder._pop_call_mask, with_kwargs=True, always_call=True)
    return holder
