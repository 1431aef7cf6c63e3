"""A TransNormer language model: SRMSNorm, gated linear attention (GLA) with decay,
optional LRPE, and SGLU (TransNormerLLM, Qin et al., arXiv 2307.14995, section 3).

Each block (section 3.1):  x ← x + GLA(SRMSNorm(x));  x ← x + SGLU(SRMSNorm(x)).

The model runs its attention in one of three equal forms (see
:mod:`.lightning_attention`): ``"blockwise"`` (Lightning Attention, training and
prompts), ``"recurrent"`` (one token at a time, constant memory) or
``"parallel"`` (the quadratic reference). A :class:`RecurrentState` carries
every layer's KV state between calls, so text can be read in any split.
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from tokensmith import Architecture, BuildContext, ConfigError

from .config import TransNormerConfig
from .lightning_attention import (
    decay_rates,
    lightning_attention,
    parallel_linear_attention,
    recurrent_linear_attention,
)
from .srmsnorm import SRMSNorm

FORMS = ("blockwise", "recurrent", "parallel")


@attrs.frozen
class RecurrentState:
    """The model after reading ``offset`` tokens: one KV state ``[batch, heads, dk, dv]``
    per layer. Its size does not depend on ``offset``. Tensors are never modified in
    place, so a state can be shared by several continuations."""

    kv: tuple[torch.Tensor, ...]
    offset: int = 0

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.kv)


class LRPE(nn.Module):
    """Linearized relative positional encoding (section 3.1.1):
    x_n ↦ [x_n cos(nθ), x_n sin(nθ)], a learnable θ initialised at 10000^{−2i/d}.

    (q_n, k_m) then meet through Σ_i q_i k_i cos((n−m)θ_i), a relative position;
    the head dimension doubles.
    """

    def __init__(self, heads: int, head_dim: int) -> None:
        super().__init__()
        i = torch.arange(head_dim, dtype=torch.float64)
        self.theta = nn.Parameter((10000.0 ** (-2.0 * i / head_dim)).repeat(heads, 1).float())

    def forward(self, x: torch.Tensor, offset: int) -> torch.Tensor:
        # bf16/fp16 cannot hold positions past 256/2048 exactly: angles are built in float32
        work = torch.promote_types(x.dtype, torch.float32)
        pos = torch.arange(offset, offset + x.shape[2], device=x.device, dtype=work)
        angle = pos[None, :, None] * self.theta.to(work)[:, None, :]
        return torch.cat([x * angle.cos().to(x.dtype), x * angle.sin().to(x.dtype)], dim=-1)


class GatedLinearAttention(nn.Module):
    """GLA (section 3.1.2): [q, k, v, u] = xW; q, k ← SiLU; o = SRMSNorm(LinAttn(q, k, v)) ⊙ u;
    out = oW_o. No softmax and no 1/√d: the norm after attention bounds the output."""

    def __init__(self, config: TransNormerConfig, layer: int) -> None:
        super().__init__()
        self.heads, self.block_size = config.heads, config.block_size
        self.qkvu = nn.Linear(config.width, 4 * config.width, bias=False)
        self.out = nn.Linear(config.width, config.width, bias=False)
        self.norm = SRMSNorm(config.width, config.eps)
        self.lrpe = LRPE(config.heads, config.head_dim) if config.uses_lrpe(layer) else None
        self.rates = tuple(decay_rates(config.heads, layer, config.layers, config.decay))
        self.register_buffer("decay", self._decay(torch.get_default_dtype(), None), persistent=False)

    def _decay(self, dtype: torch.dtype, device: torch.device | None) -> torch.Tensor:
        # λ near 1 rounds to exactly 1.0 in bf16/fp16 (a head that should forget never does),
        # and λ^n compounds any rounding: λ is never kept below float32
        return torch.tensor(self.rates, dtype=torch.promote_types(dtype, torch.float32), device=device)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        # model.to(dtype) has just rounded λ to the new dtype: rebuild it from the rates
        self.decay = self._decay(self.decay.dtype, self.decay.device)
        return self

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, form: str, kv: torch.Tensor | None, offset: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v, u = self.qkvu(x).chunk(4, dim=-1)
        # the decay masks, powers and the KV state stay in the dtype of λ (at least float32),
        # as the paper's kernel accumulates; only the attention output returns to x's dtype
        work = self.decay.dtype
        q, k, v = (self._heads(t).to(work) for t in (F.silu(q), F.silu(k), v))
        if self.lrpe is not None:
            q, k = self.lrpe(q, offset), self.lrpe(k, offset)
        if form == "blockwise":
            o, kv = lightning_attention(q, k, v, self.decay, self.block_size, kv)
        elif form == "recurrent":
            o, kv = recurrent_linear_attention(q, k, v, self.decay, kv)
        else:
            o, kv = parallel_linear_attention(q, k, v, self.decay, kv)
        o = o.transpose(1, 2).reshape(x.shape).to(x.dtype)
        return self.out(self.norm(o) * u), kv


class SGLU(nn.Module):
    """Simple GLU (section 3.1.2): ((xW₁) ⊙ (xW₂))W₃, with no activation."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(width, hidden, bias=False)
        self.w2 = nn.Linear(width, hidden, bias=False)
        self.w3 = nn.Linear(hidden, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w3(self.w1(x) * self.w2(x))


class TransNormerBlock(nn.Module):
    def __init__(self, config: TransNormerConfig, layer: int) -> None:
        super().__init__()
        self.attn_norm = SRMSNorm(config.width, config.eps)
        self.attn = GatedLinearAttention(config, layer)
        self.ffn_norm = SRMSNorm(config.width, config.eps)
        self.ffn = SGLU(config.width, config.ffn_hidden)

    def forward(self, x: torch.Tensor, form: str, kv: torch.Tensor | None, offset: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        h, kv = self.attn(self.attn_norm(x), form, kv, offset)
        x = x + h
        return x + self.ffn(self.ffn_norm(x)), kv


class TransNormerLM(nn.Module):
    """Token embedding (scaled by √d unless ``scale_embedding`` is off), TransNormer
    blocks, a final SRMSNorm and the output head (tied to the embedding by default)."""

    def __init__(self, config: TransNormerConfig) -> None:
        super().__init__()
        if config.vocab_size is None:
            raise ConfigError("vocab_size is not set", component="architecture 'transnormer-lm'",
                              hint="set vocab_size, or build it in a pipeline that has a tokenizer")
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.width)
        self.embed_scale = math.sqrt(config.width) if config.scale_embedding else 1.0
        self.blocks = nn.ModuleList(TransNormerBlock(config, i) for i in range(config.layers))
        self.norm = SRMSNorm(config.width, config.eps)
        self.head = nn.Linear(config.width, config.vocab_size, bias=False)
        self.apply(self._init)
        if config.tie_embeddings:
            self.head.weight = self.embed.weight

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def get_output_embeddings(self) -> nn.Linear:
        return self.head

    def empty_state(self, batch: int = 1) -> RecurrentState:
        """The state before any token: zeros, the same size as after any number of tokens."""
        kv = []
        for block in self.blocks:
            dk = self.config.head_dim * (2 if block.attn.lrpe is not None else 1)
            kv.append(block.attn.decay.new_zeros(batch, self.config.heads, dk, self.config.head_dim))
        return RecurrentState(tuple(kv), 0)

    def forward(self, input_ids: torch.Tensor, *, form: str = "blockwise",
                state: RecurrentState | None = None) -> tuple[torch.Tensor, RecurrentState]:
        """Logits ``[batch, n, vocab]`` for every position, and the state after the last."""
        if form not in FORMS:
            raise ConfigError(f"unknown attention form {form!r}", component="architecture 'transnormer-lm'",
                              hint=f"use form = one of {FORMS}")
        state = self.empty_state(input_ids.shape[0]) if state is None else state
        x = self.embed(input_ids) * self.embed_scale
        kvs = []
        for block, kv in zip(self.blocks, state.kv, strict=True):
            x, kv = block(x, form, kv, state.offset)
            kvs.append(kv)
        logits = self.head(self.norm(x))
        return logits, RecurrentState(tuple(kvs), state.offset + input_ids.shape[1])


@attrs.frozen
class TransNormerArchitecture(TransNormerConfig, Architecture):
    """The ``transnormer-lm`` architecture: its parameters are the fields of
    :class:`TransNormerConfig` (inherited, so declared once), plus the build context,
    whose tokenizer sets ``vocab_size`` when it is not given. ``build(runtime)`` makes a
    randomly initialised :class:`TransNormerLM` (seeded by ``runtime.seed``) on the
    runtime's device and dtype."""

    name = "transnormer-lm"

    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def config(self) -> TransNormerConfig:
        """The model's config: these fields, ``vocab_size`` defaulting to the tokenizer's size."""
        fields = {f.name: getattr(self, f.name) for f in attrs.fields(TransNormerConfig)}
        if self.vocab_size is None and self.ctx is not None and self.ctx.tokenizer is not None:
            fields["vocab_size"] = self.ctx.tokenizer.vocab_size
        return TransNormerConfig(**fields)

    def build(self, runtime) -> TransNormerLM:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(runtime.seed)
            model = TransNormerLM(self.config)
        return model.to(device=runtime.torch_device(), dtype=runtime.torch_dtype())
