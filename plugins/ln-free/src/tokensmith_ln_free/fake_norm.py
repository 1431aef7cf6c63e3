"""Fake norms: a LayerNorm / RMSNorm whose per-token scale is replaced by a frozen average.

Heimersheim (2024), "You can remove GPT2's LayerNorm by fine-tuning";
Baroni, Khara, Schaeffer, Subkhankulov, Heimersheim (2025), "Transformers Don't Need
LayerNorm at Inference Time", arXiv 2507.02559.

A :class:`FakeNorm` wraps the model's own norm module. In **live** mode (the paper's
"real mode") it runs that module unchanged, optionally observing the per-token
standard deviation ``σ_t`` into an exponential moving average ``σ̄`` (momentum 0.9).
In **fake** mode the norm becomes

    LayerNorm:  y = (x - mean_d(x)) / σ̄ ⊙ γ + β
    RMSNorm:    y = x / σ̄ ⊙ γ

with ``σ̄`` a frozen scalar and γ the norm's gain (its weight, or ``1 + weight`` for the
Gemma-style RMSNorm that core's ``NormLayer.weight_offset`` reports), so the layer is a
fixed linear (affine with β) map.
The first position (the attention sink) and end-of-text tokens have a much larger
norm, so they get their own frozen ``σ̄_special`` until the schedule turns that
special treatment off, after which they use ``σ̄`` like every other token.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from tokensmith import InputError, SurgeryError


def token_std(x: torch.Tensor, kind: str, eps: float) -> torch.Tensor:
    """``σ_t`` of every token (float32): ``sqrt(var + eps)`` for LayerNorm, ``sqrt(mean(x²) + eps)``
    for RMSNorm, i.e. exactly the divisor the live norm uses."""
    h = x.float()
    if kind == "layernorm":
        h = h - h.mean(-1, keepdim=True)
    return (h.pow(2).mean(-1) + eps).sqrt()


class SpecialPositions:
    """Which tokens get ``σ̄_special``: absolute position 0, and tokens whose id is in ``special_ids``
    (end-of-text; the paper gives EOT the BOS std).

    A forward pre-hook on the model records the masks of the batch it is about to run, and which
    tokens are real (its ``attention_mask`` keyword, so padding never enters σ̄); a forward
    hook clears them, so a stale mask is never used. Called without the hooks (a norm module on
    its own, or a model called with ``inputs_embeds``) the first row of each sequence counts as
    position 0 and no token counts as a special id.
    """

    def __init__(self, special_ids: tuple[int, ...] = ()) -> None:
        self.special_ids = tuple(int(i) for i in special_ids)
        self.treat_first = True
        self.treat_special_ids = bool(self.special_ids)
        self.first: torch.Tensor | None = None
        self.ids: torch.Tensor | None = None
        self.real: torch.Tensor | None = None
        self.handles: tuple[RemovableHandle, ...] = ()

    @property
    def active(self) -> bool:
        return self.treat_first or self.treat_special_ids

    def attach(self, model: nn.Module) -> None:
        self.handles = (model.register_forward_pre_hook(self.before_forward, with_kwargs=True),
                        model.register_forward_hook(self.after_forward, with_kwargs=True, always_call=True))

    def detach(self) -> None:
        """Remove the hooks :meth:`attach` installed (a deep copy of the model carries copies of
        both the hooks and these handles, so each copy detaches its own)."""
        for handle in self.handles:
            handle.remove()
        self.handles = ()

    def bind(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None,
             attention_mask: torch.Tensor | None = None) -> None:
        """Record the masks for ``input_ids`` (batch, seq) at absolute ``positions`` (default 0..seq-1);
        ``attention_mask`` (0 = padding) marks the real tokens."""
        if positions is None:
            positions = torch.arange(input_ids.shape[-1], device=input_ids.device).expand_as(input_ids)
        self.first = positions == 0
        self.ids = torch.isin(input_ids, torch.tensor(self.special_ids, device=input_ids.device)) \
            if self.special_ids else torch.zeros_like(self.first)
        self.bind_padding(attention_mask, input_ids.shape)

    def bind_padding(self, attention_mask: torch.Tensor | None, shape: torch.Size) -> None:
        """Record which of the ``shape`` (batch, seq) tokens are real. A cached call's mask also
        covers the earlier tokens, so its last ``seq`` columns are the ones of this call."""
        if attention_mask is None:
            self.real = None
            return
        batch, seq = shape
        if attention_mask.dim() != 2 or attention_mask.shape[0] != batch or attention_mask.shape[1] < seq:
            raise InputError(f"attention_mask of shape {tuple(attention_mask.shape)} does not cover "
                             f"tokens of shape {tuple(shape)}", component="normalization 'ln-free'",
                             hint="pass a (batch, seq) mask of 1 for real tokens and 0 for padding")
        self.real = attention_mask[:, attention_mask.shape[1] - seq:].bool()

    def clear(self) -> None:
        self.first = self.ids = self.real = None

    def before_forward(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        attention_mask = kwargs.get("attention_mask")
        if input_ids is None:
            self.clear()
            embeds = kwargs.get("inputs_embeds")
            if embeds is not None:
                self.bind_padding(attention_mask, embeds.shape[:2])
            return
        positions = kwargs.get("position_ids")
        if positions is None:
            positions = kwargs.get("cache_position")
        if positions is None:
            past = kwargs.get("past_key_values") or kwargs.get("cache")
            start = int(past.get_seq_length()) if hasattr(past, "get_seq_length") else 0
            positions = torch.arange(start, start + input_ids.shape[-1], device=input_ids.device)
        self.bind(input_ids, positions.expand_as(input_ids), attention_mask)

    def after_forward(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        self.clear()

    def masks(self, shape: torch.Size, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(first, special_id)`` boolean masks of shape ``shape`` (the token dims of a norm input)."""
        if self.first is None:
            first = torch.zeros(shape, dtype=torch.bool, device=device)
            if len(shape) >= 1 and shape[-1] > 0:
                first[..., 0] = True
            return first, torch.zeros_like(first)
        if self.first.shape != shape:
            raise InputError(f"norm input has token shape {tuple(shape)} but the model was called "
                             f"with input_ids of shape {tuple(self.first.shape)}",
                             component="normalization 'ln-free'",
                             hint="fake norms expect hidden states shaped (batch, seq, dim)")
        return self.first, self.ids

    def observed(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        """Tokens measured into ``σ̄_special`` rather than ``σ̄`` (regardless of the treatment flags)."""
        first, ids = self.masks(shape, device)
        return first | ids

    def real_tokens(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        """Tokens that are not padding: all of them unless an attention mask was recorded."""
        if self.real is None:
            return torch.ones(shape, dtype=torch.bool, device=device)
        if self.real.shape != shape:
            raise InputError(f"norm input has token shape {tuple(shape)} but the model's attention_mask "
                             f"covers {tuple(self.real.shape)}", component="normalization 'ln-free'",
                             hint="fake norms expect hidden states shaped (batch, seq, dim)")
        return self.real

    def treated(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        """Tokens that use ``σ̄_special`` in fake mode, given which treatments are still on."""
        first, ids = self.masks(shape, device)
        return (first & self.treat_first) | (ids & self.treat_special_ids)


class FakeNorm(nn.Module):
    """The paper's FakeLayerNorm (and its RMSNorm analogue) around the model's own ``original`` norm."""

    # core's find_norm_layers then reports this module, not the original norm inside it
    tokensmith_replacement = True

    def __init__(self, original: nn.Module, kind: str, eps: float, positions: SpecialPositions,
                 momentum: float = 0.9, weight_offset: float = 0.0) -> None:
        super().__init__()
        self.original = original
        self.kind = kind
        self.eps = eps
        # γ = weight_offset + weight: 1.0 for Gemma-style (1 + w) RMSNorm (core's NormLayer)
        self.weight_offset = weight_offset
        self.momentum = momentum
        self.positions = positions
        self.mode = "live"
        self.observing = False
        device = next(iter(original.parameters()), torch.empty(0)).device
        for name in ("average_std", "special_std", "average_updates", "special_updates"):
            self.register_buffer(name, torch.zeros((), dtype=torch.float32, device=device))

    @property
    def weight(self) -> torch.Tensor | None:
        return getattr(self.original, "weight", None)

    @property
    def bias(self) -> torch.Tensor | None:
        return getattr(self.original, "bias", None)

    @property
    def gain(self) -> torch.Tensor | None:
        """γ: the weight, plus ``weight_offset`` for a ``(1 + weight)`` norm."""
        weight = self.weight
        return weight + self.weight_offset if weight is not None and self.weight_offset else weight

    def extra_repr(self) -> str:
        return (f"kind={self.kind}, mode={self.mode}, σ̄={self.average_std.item():.4g}, "
                f"σ̄_special={self.special_std.item():.4g}")

    def scaled(self, x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """The norm with divisor ``std`` (broadcast over tokens) instead of each token's own σ_t."""
        h = x.float()
        if self.kind == "layernorm":
            h = h - h.mean(-1, keepdim=True)
        h = (h / std).to(x.dtype)
        gain = self.gain
        if gain is not None:
            h = gain * h
        if self.bias is not None:
            h = h + self.bias
        return h

    def frozen_std(self, x: torch.Tensor) -> torch.Tensor:
        """The divisor of fake mode for every token of ``x``: σ̄, or σ̄_special where still treated."""
        if not self.positions.active:
            return self.average_std
        special = self.positions.treated(x.shape[:-1], x.device)
        return torch.where(special, self.special_std, self.average_std).unsqueeze(-1)

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        """One EMA update of σ̄ (ordinary tokens) and σ̄_special (position 0, special ids);
        padding is measured into neither."""
        std = token_std(x.detach(), self.kind, self.eps)
        special = self.positions.observed(std.shape, std.device)
        real = self.positions.real_tokens(std.shape, std.device)
        for tokens, value, updates in ((std[~special & real], self.average_std, self.average_updates),
                                       (std[special & real], self.special_std, self.special_updates)):
            if tokens.numel():
                mean = tokens.mean()
                value.copy_(mean if updates.item() == 0
                            else self.momentum * value + (1 - self.momentum) * mean)
                updates.add_(1)

    def freeze(self) -> None:
        """Switch to fake mode with the σ̄ observed so far (the paper's removal of this norm)."""
        if self.average_updates.item() == 0:
            raise SurgeryError("this fake norm was never calibrated, so it has no σ̄ to freeze",
                               component="normalization 'ln-free'",
                               hint="run calibration texts (or training steps) through it in live mode first")
        if self.special_updates.item() == 0:
            self.special_std.copy_(self.average_std)
        self.mode = "fake"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "live":
            if self.observing:
                self.observe(x)
            return self.original(x)
        return self.scaled(x, self.frozen_std(x))


class FixedLinearMap(nn.Module):
    """A removed norm exported as what it has become: ``y = C x ⊙ s + b``.

    ``C`` subtracts the mean over the hidden dimension (LayerNorm only), ``s = γ / σ̄`` (γ the
    norm's gain, ``1 + weight`` for a Gemma-style norm) and ``b = β``. It contains no
    normalization, so the exported model has no norm layers.
    """

    def __init__(self, scale: torch.Tensor, bias: torch.Tensor | None, center: bool) -> None:
        super().__init__()
        self.scale = nn.Parameter(scale)
        self.bias = None if bias is None else nn.Parameter(bias)
        self.center = center

    @classmethod
    def from_fake_norm(cls, norm: FakeNorm) -> FixedLinearMap:
        if norm.mode != "fake" or norm.positions.active:
            raise SurgeryError(
                f"cannot export a fake norm in mode {norm.mode!r} with special-position treatment "
                f"{'on' if norm.positions.active else 'off'} as one fixed linear map",
                component="normalization 'ln-free'",
                hint="freeze every layer and turn the special treatments off first (the end of the schedule)")
        if norm.gain is None:
            gamma, dtype = torch.ones((), device=norm.average_std.device), torch.float32
        else:
            gamma, dtype = norm.gain.detach().float(), norm.weight.dtype
        bias = None if norm.bias is None else norm.bias.detach().clone()
        return cls((gamma / norm.average_std).to(dtype), bias, norm.kind == "layernorm")

    def extra_repr(self) -> str:
        return f"dim={self.scale.shape[-1] if self.scale.dim() else 'scalar'}, center={self.center}, " \
               f"bias={self.bias is not None}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.center:
            x = x - x.mean(-1, keepdim=True)
        x = x * self.scale
        return x if self.bias is None else x + self.bias
