"""Causal linear attention with exponential decay, in three equal forms.

TransNormerLLM, Qin et al., arXiv 2307.14995. For one head with decay λ:

    o_t = Σ_{s≤t} λ^{t−s} (q_t · k_s) v_s                                (eq. 5)

* :func:`parallel_linear_attention` — the masked quadratic form (QKᵀ ⊙ D)V,
  D_ij = λ^{i−j} for i ≥ j: the reference.
* :func:`lightning_attention` — Lightning Attention (section 3.2): blocks of
  ``B`` tokens, masked form inside a block, a carried state KV between blocks.
  Linear in the sequence length (the paper's Triton kernel is IO-aware; this is
  the same blockwise computation in plain PyTorch).
* :func:`recurrent_linear_attention` — the robust inference form (section 3.3):
  kv_t = λ·kv_{t−1} + k_tᵀ v_t, o_t = q_t · kv_t, a constant-size state and no
  λ^{−t} factor to overflow.

Shapes: ``q``, ``k`` are ``[batch, heads, n, dk]``, ``v`` is ``[batch, heads, n, dv]``,
``decay`` is ``[heads]`` with values in (0, 1], and a state is ``[batch, heads, dk, dv]``.
Every function takes the state left by a previous call and returns the new one,
so a sequence may be split anywhere between calls and between forms.
"""

from __future__ import annotations

import math

import torch

from tokensmith import ConfigError

_COMPONENT = "architecture 'transnormer-lm'"


def alibi_slopes(heads: int) -> list[float]:
    """ALiBi's geometric slopes s_h = 2^{−8(h+1)/H}, h = 0..H−1."""
    return [2.0 ** (-8.0 * (h + 1) / heads) for h in range(heads)]


def decay_rates(heads: int, layer: int, layers: int, form: str = "alibi") -> list[float]:
    """λ for each head of layer ``layer`` (0-based) of ``layers`` (section 3.1.1, LRPE-d).

    ``"alibi"`` (the released code): λ_{h,l} = exp(−s_h·(1 − l/(L−1))), with the
    ALiBi slopes s_h, so lower layers forget faster and the last layer keeps
    everything (λ = 1). A one-layer model uses l/(L−1) = 0.
    ``"paper"`` (the paper's text): λ_{h,l} = exp(−(8h/H)·(1 − l/L)), so head 0
    never forgets.
    """
    if not 0 <= layer < layers:
        raise ConfigError(f"layer {layer} is outside 0..{layers - 1}", component=_COMPONENT,
                          hint="layers are numbered from 0 to layers - 1")
    if form == "alibi":
        depth = layer / (layers - 1) if layers > 1 else 0.0
        return [math.exp(-s * (1.0 - depth)) for s in alibi_slopes(heads)]
    if form == "paper":
        return [math.exp(-(8.0 * h / heads) * (1.0 - layer / layers)) for h in range(heads)]
    raise ConfigError(f"unknown decay form {form!r}", component=_COMPONENT,
                      hint="use decay = 'alibi' or 'paper'")


def decay_mask(decay: torch.Tensor, n: int) -> torch.Tensor:
    """D with D_ij = λ^{i−j} for i ≥ j and 0 above the diagonal, ``[heads, n, n]``."""
    pos = torch.arange(n, device=decay.device)
    gap = (pos[:, None] - pos[None, :]).to(decay.dtype)
    # exponent in log space: λ^{i−j} for i < j would overflow before masking
    log_mask = gap * decay.log()[:, None, None]
    return log_mask.masked_fill(gap < 0, float("-inf")).exp()


def _zero_state(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    b, h, _, dk = q.shape
    return q.new_zeros(b, h, dk, v.shape[-1])


def _powers(decay: torch.Tensor, exponents: torch.Tensor) -> torch.Tensor:
    """λ^e for each head and exponent, ``[heads, len(exponents), 1]``."""
    return (exponents.to(decay.dtype)[None, :] * decay.log()[:, None]).exp()[..., None]


def parallel_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, decay: torch.Tensor,
                              state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(QKᵀ ⊙ D)V plus the decayed contribution λ^{t+1} q_t·S of a previous state S."""
    n = q.shape[2]
    out = (q @ k.transpose(-1, -2) * decay_mask(decay, n)) @ v
    pos = torch.arange(n, device=q.device)
    kv_new = (k * _powers(decay, n - 1 - pos)).transpose(-1, -2) @ v
    if state is None:
        return out, kv_new
    out = out + (q * _powers(decay, pos + 1)) @ state
    return out, _powers(decay, torch.tensor([n], device=q.device)) * state + kv_new


def lightning_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, decay: torch.Tensor,
                        block_size: int, state: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Blockwise (Lightning Attention) form; the last block may be shorter than ``block_size``.

    Per block t of length m (i, j = 0..m−1 inside it):
      intra  O_intra = (Q_t K_tᵀ ⊙ D) V_t
      inter  O_inter = (Q_t ⊙ λ^{i+1}) KV
      state  KV ← λ^m KV + (K_t ⊙ λ^{m−1−j})ᵀ V_t
    """
    if block_size <= 0:
        raise ConfigError(f"block_size must be > 0, got {block_size}", component=_COMPONENT,
                          hint="use a positive block_size (the paper uses 256)")
    n = q.shape[2]
    kv = _zero_state(q, v) if state is None else state
    mask = decay_mask(decay, min(block_size, n))
    pos = torch.arange(min(block_size, n) + 1, device=q.device)
    q_decay = _powers(decay, pos[1:])
    blocks = []
    for start in range(0, n, block_size):
        qb, kb, vb = (t[:, :, start:start + block_size] for t in (q, k, v))
        m = qb.shape[2]
        intra = (qb @ kb.transpose(-1, -2) * mask[:, :m, :m]) @ vb
        blocks.append(intra + (qb * q_decay[:, :m]) @ kv)
        k_decay = _powers(decay, m - 1 - pos[:m])
        kv = _powers(decay, pos[m:m + 1]) * kv + (kb * k_decay).transpose(-1, -2) @ vb
    out = torch.cat(blocks, dim=2) if blocks else v.new_zeros(*v.shape)
    return out, kv


def recurrent_step(q_t: torch.Tensor, k_t: torch.Tensor, v_t: torch.Tensor, decay: torch.Tensor,
                   state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One token (``q_t``, ``k_t``: ``[batch, heads, dk]``): kv ← λ·kv + k_tᵀ v_t; o_t = q_t·kv.

    Returns a new state tensor (the old one is not modified), so states can be shared.
    """
    kv = decay[:, None, None] * state + k_t[..., :, None] * v_t[..., None, :]
    return (q_t[..., None, :] @ kv).squeeze(-2), kv


def recurrent_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, decay: torch.Tensor,
                               state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrence of :func:`recurrent_step` over every position, one at a time."""
    kv = _zero_state(q, v) if state is None else state
    outs = []
    for t in range(q.shape[2]):
        o, kv = recurrent_step(q[:, :, t], k[:, :, t], v[:, :, t], decay, kv)
        outs.append(o)
    out = torch.stack(outs, dim=2) if outs else v.new_zeros(*v.shape)
    return out, kv
