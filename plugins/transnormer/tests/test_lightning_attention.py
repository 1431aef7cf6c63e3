"""Invariant 1: parallel, blockwise (Lightning) and recurrent linear attention agree, for
any block size and any split of the sequence; all equal the sum of eq. 5 written out."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_transnormer.lightning_attention import (
    alibi_slopes,
    decay_mask,
    decay_rates,
    lightning_attention,
    parallel_linear_attention,
    recurrent_linear_attention,
    recurrent_step,
)

from tokensmith import ConfigError

_settings = settings(max_examples=60, deadline=None)


def _inputs(seed, n, heads=3, dk=4, dv=5, batch=2):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(batch, heads, n, dk, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(batch, heads, n, dv, generator=g, dtype=torch.float64)
    decay = torch.rand(heads, generator=g, dtype=torch.float64) * 0.6 + 0.4
    state = torch.randn(batch, heads, dk, dv, generator=g, dtype=torch.float64)
    return q, k, v, decay, state


def _close(a, b):
    if b.numel() == 0:
        return a.shape == b.shape
    return float((a - b).abs().max()) <= 1e-6 * max(1.0, float(b.abs().max()))


def test_parallel_equals_eq5_written_out():
    q, k, v, decay, state = _inputs(0, 9)
    out, kv = parallel_linear_attention(q, k, v, decay, state)
    for b in range(2):
        for h in range(3):
            lam = float(decay[h])
            kv_t = state[b, h].clone()
            for t in range(9):
                o = sum(lam ** (t - s) * float(q[b, h, t] @ k[b, h, s]) * v[b, h, s] for s in range(t + 1))
                o = o + lam ** (t + 1) * q[b, h, t] @ state[b, h]
                assert torch.allclose(out[b, h, t], o, atol=1e-10)
                kv_t = lam * kv_t + torch.outer(k[b, h, t], v[b, h, t])
            assert torch.allclose(kv[b, h], kv_t, atol=1e-10)


@_settings
@given(n=st.integers(0, 70), block=st.integers(1, 80), seed=st.integers(0, 2**16), carry=st.booleans())
def test_three_forms_agree(n, block, seed, carry):
    q, k, v, decay, state = _inputs(seed, n)
    state = state if carry else None
    ref, ref_kv = parallel_linear_attention(q, k, v, decay, state)
    for out, kv in (lightning_attention(q, k, v, decay, block, state),
                    recurrent_linear_attention(q, k, v, decay, state)):
        assert out.shape == ref.shape and _close(out, ref)
        assert _close(kv, ref_kv)


@_settings
@given(n=st.integers(2, 60), data=st.data(), seed=st.integers(0, 2**16))
def test_any_split_between_calls_and_forms(n, data, seed):
    q, k, v, decay, _ = _inputs(seed, n)
    cut = data.draw(st.integers(1, n - 1))
    block = data.draw(st.integers(1, n))
    ref, ref_kv = lightning_attention(q, k, v, decay, block)
    head, kv = recurrent_linear_attention(q[:, :, :cut], k[:, :, :cut], v[:, :, :cut], decay)
    tail, kv = lightning_attention(q[:, :, cut:], k[:, :, cut:], v[:, :, cut:], decay, block, kv)
    assert _close(torch.cat([head, tail], dim=2), ref) and _close(kv, ref_kv)


def test_long_sequence_with_no_decay_stays_finite():
    # λ = 1 (the last layer of the released decay) is where a λ^{-t} rewrite would overflow
    q, k, v, _, _ = _inputs(1, 2000, heads=1, batch=1)
    decay = torch.ones(1, dtype=torch.float64)
    out, _ = lightning_attention(q, k, v, decay, 256)
    ref, _ = recurrent_linear_attention(q, k, v, decay)
    assert torch.isfinite(out).all() and _close(out, ref)


def test_recurrent_step_does_not_modify_its_state():
    q, k, v, decay, state = _inputs(2, 1)
    before = state.clone()
    recurrent_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], decay, state)
    assert torch.equal(state, before)


def test_decay_mask_is_lower_triangular_powers():
    decay = torch.tensor([0.5, 1.0], dtype=torch.float64)
    mask = decay_mask(decay, 4)
    for i in range(4):
        for j in range(4):
            assert float(mask[0, i, j]) == pytest.approx(0.5 ** (i - j) if i >= j else 0.0, rel=1e-15)
            assert mask[1, i, j] == (1.0 if i >= j else 0.0)


def test_block_size_must_be_positive():
    q, k, v, decay, _ = _inputs(0, 4)
    with pytest.raises(ConfigError, match="block_size"):
        lightning_attention(q, k, v, decay, 0)


# -- the decay formula (section 3.1.1 and the released code) --------------------------

def test_alibi_slopes_are_geometric():
    assert alibi_slopes(8) == [2.0 ** -(i + 1) for i in range(8)]
    assert alibi_slopes(4) == [2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8]


@given(heads=st.integers(1, 16), layers=st.integers(1, 12), data=st.data())
def test_alibi_decay_formula(heads, layers, data):
    layer = data.draw(st.integers(0, layers - 1))
    rates = decay_rates(heads, layer, layers, "alibi")
    depth = layer / (layers - 1) if layers > 1 else 0.0
    for h, lam in enumerate(rates):
        assert lam == pytest.approx(math.exp(-(2.0 ** (-8.0 * (h + 1) / heads)) * (1 - depth)), rel=1e-15)
        assert 0 < lam <= 1
    assert rates == sorted(rates)  # smaller slopes on later heads: they forget more slowly
    if layers > 1 and layer == layers - 1:
        assert rates == [1.0] * heads  # the last layer keeps everything


@given(heads=st.integers(1, 16), layers=st.integers(1, 12), data=st.data())
def test_paper_decay_formula(heads, layers, data):
    layer = data.draw(st.integers(0, layers - 1))
    rates = decay_rates(heads, layer, layers, "paper")
    for h, lam in enumerate(rates):
        assert lam == pytest.approx(math.exp(-(8 * h / heads) * (1 - layer / layers)), rel=1e-15)
    assert rates[0] == 1.0


def test_decay_forgets_less_in_higher_layers():
    for form in ("alibi", "paper"):
        per_layer = [decay_rates(8, layer, 6, form) for layer in range(6)]
        for h in range(8):
            column = [rates[h] for rates in per_layer]
            assert column == sorted(column)


def test_decay_rejects_bad_input():
    with pytest.raises(ConfigError, match="outside"):
        decay_rates(4, 4, 4)
    with pytest.raises(ConfigError, match="decay form"):
        decay_rates(4, 0, 4, "linear")
