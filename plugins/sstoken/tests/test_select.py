"""ssToken's selector against brute force and the paper's invariants."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_sstoken.select import per_token_loss, sstoken_scores, sstoken_select

from tokensmith import IGNORE_INDEX, InputError


def _batch(seed: int, b: int = 3, t: int = 9, v: int = 7, prompt: int = 3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g)
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[:, :prompt] = IGNORE_INDEX
    labels[1, -2:] = IGNORE_INDEX  # right padding in one row
    attention = torch.softmax(torch.randn(b, t, t, generator=g), -1)
    ref = torch.rand(b, t, generator=g) * 3
    return logits, labels, attention, ref


def _brute(logits, labels, attention, ref, ratio, gamma, eps=1e-8):
    """Per sample, in plain Python: REL, min-max, prompt attention, score, sorted top ceil(ρR)."""
    out = torch.full_like(labels, IGNORE_INDEX)
    for r in range(labels.shape[0]):
        resp = [t for t in range(labels.shape[1]) if labels[r, t] != IGNORE_INDEX]
        first = resp[0]
        rel = {}
        for t in resp:
            logp = torch.log_softmax(logits[r, t - 1].double(), -1)[labels[r, t]].item()
            rel[t] = float(ref[r, t]) + logp  # ℓ_his − ℓ_θ
        lo, hi = min(rel.values()), max(rel.values())
        score = {}
        for t in resp:
            a = sum(float(attention[r, t - 1, j]) for j in range(first))
            score[t] = gamma * (rel[t] - lo) / (hi - lo + eps) + (1 - gamma) * a
        k = math.ceil(ratio * len(resp))
        for t in sorted(resp, key=lambda t: (-score[t], t))[:k]:
            out[r, t] = labels[r, t]
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), ratio=st.floats(0.05, 1.0), gamma=st.sampled_from([0.0, 0.3, 0.5, 1.0]))
def test_matches_brute_force(seed, ratio, gamma):
    logits, labels, attention, ref = _batch(seed)
    got = sstoken_select(logits, labels, attention, ref, ratio=ratio, gamma=gamma)
    assert torch.equal(got, _brute(logits, labels, attention, ref, ratio, gamma))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), ratio=st.floats(0.01, 1.0), prompt=st.integers(1, 6))
def test_keeps_exactly_ceil_rho_r_and_never_the_prompt(seed, ratio, prompt):
    logits, labels, attention, ref = _batch(seed, prompt=prompt)
    response = torch.zeros_like(labels, dtype=torch.bool)
    response[:, prompt + 1:] = True  # a response mask narrower than the labels
    kept = sstoken_select(logits, labels, attention, ref, response_mask=response, ratio=ratio) != IGNORE_INDEX
    eligible = (labels != IGNORE_INDEX) & response
    for r in range(labels.shape[0]):
        assert int(kept[r].sum()) == math.ceil(ratio * int(eligible[r].sum()))
    assert not (kept & ~eligible).any()


def test_gamma_one_is_rel_top_k_and_zero_is_attention_top_k():
    logits, labels, attention, ref = _batch(3)
    eligible = labels != IGNORE_INDEX
    rel = ref - per_token_loss(logits, labels)
    sem = torch.nn.functional.pad((attention * (torch.arange(9) < 3)).sum(-1), (1, 0))[..., :-1]
    for gamma, key in ((1.0, rel), (0.0, sem)):
        kept = sstoken_select(logits, labels, attention, ref, ratio=0.5, gamma=gamma) != IGNORE_INDEX
        for r in range(3):
            k = math.ceil(0.5 * int(eligible[r].sum()))
            top = sorted(eligible[r].nonzero().flatten().tolist(), key=lambda t: (-float(key[r, t]), t))[:k]
            assert kept[r].nonzero().flatten().tolist() == sorted(top)


def test_history_equal_to_model_gives_zero_rel_and_no_nan():
    logits, labels, attention, _ = _batch(5)
    ref = per_token_loss(logits, labels)  # θ = θ_his
    scores, eligible = sstoken_scores(logits, labels, attention, ref, gamma=1.0)
    assert torch.isfinite(scores).all()
    assert torch.equal(scores[eligible], torch.zeros(int(eligible.sum())))


def test_shapes_are_checked():
    logits, labels, attention, ref = _batch(1)
    with pytest.raises(InputError, match="attention"):
        sstoken_select(logits, labels, attention[:, :, :4], ref)
    with pytest.raises(InputError, match="ref_losses"):
        sstoken_select(logits, labels, attention, ref[:, :4])
    with pytest.raises(InputError, match="ratio"):
        sstoken_select(logits, labels, attention, ref, ratio=0.0)
