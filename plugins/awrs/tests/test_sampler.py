"""The AWRS step against the paper's guarantees on tiny enumerable vocabularies."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_awrs.sampler import awrs_step, masking_step

P = [0.4, 0.3, 0.2, 0.1]


def chisquare_pvalue(counts, expected) -> float:
    """Pearson's chi-square test: P(chi2_{k-1} >= statistic), via the regularised gamma."""
    stat = sum((c - e) ** 2 / e for c, e in zip(counts, expected))
    df = torch.tensor((len(counts) - 1) / 2, dtype=torch.float64)
    return float(torch.special.gammaincc(df, torch.tensor(stat / 2, dtype=torch.float64)))


def draws(probs, accepted, n, seed=0, sampler=awrs_step):
    logw = torch.tensor(probs, dtype=torch.float64).log()
    gen = torch.Generator().manual_seed(seed)
    return [sampler(logw, lambda x: x in accepted, gen) for _ in range(n)]


@pytest.mark.parametrize("probs,accepted", [(P, {1, 3}), ([0.5, 0.5], {0}),
                                            ([0.05, 0.15, 0.3, 0.5], {0, 2})])
def test_frequencies_match_pc_over_zc(probs, accepted):
    steps = draws(probs, accepted, 3000)
    tokens = sorted(accepted)
    counts = [sum(s.token == t for s in steps) for t in tokens]
    z_c = sum(probs[t] for t in tokens)
    expected = [len(steps) * probs[t] / z_c for t in tokens]
    assert sum(counts) == len(steps)
    if len(tokens) > 1:
        assert chisquare_pvalue(counts, expected) > 1e-3


@pytest.mark.parametrize("probs,accepted", [(P, {1, 3}), ([0.5, 0.5], {0}),
                                            ([0.05, 0.15, 0.3, 0.5], {0, 2}), (P, {3})])
def test_mean_weight_is_zc(probs, accepted):
    steps = draws(probs, accepted, 3000, seed=1)
    w = torch.tensor([math.exp(s.log_weight) for s in steps])
    z_c = sum(probs[t] for t in accepted)
    stderr = float(w.std()) / math.sqrt(len(w))
    assert abs(float(w.mean()) - z_c) < 4 * stderr + 1e-12


def test_chisquare_pvalue_matches_known_quantiles():
    d = 5 * 3.841459 ** 0.5  # the statistic 2 d^2 / 50 is chi2_1's 95% quantile
    assert chisquare_pvalue([50 + d, 50 - d], [50, 50]) == pytest.approx(0.05, rel=1e-4)
    assert chisquare_pvalue([10, 10, 10], [10, 10, 10]) == 1.0


def test_worked_example_weights():
    """V = {a: 0.5 accepted, b: 0.5 rejected}: w = 1 or 1/2 (a first), 1/4 (b first)."""
    values = {round(math.exp(s.log_weight), 12) for s in draws([0.5, 0.5], {0}, 300)}
    assert values == {1.0, 0.5, 0.25}


@settings(max_examples=60, deadline=None)
@given(probs=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=12), data=st.data())
def test_never_returns_a_violating_token(probs, data):
    accepted = data.draw(st.sets(st.integers(0, len(probs) - 1)))
    for step in draws(probs, accepted, 5, seed=data.draw(st.integers(0, 99))):
        if step.token is None:
            assert not accepted and step.log_weight == -math.inf
        else:
            assert step.token in accepted and step.log_weight > -math.inf


@settings(max_examples=40, deadline=None)
@given(probs=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=40), seed=st.integers(0, 999),
       pruned=st.sets(st.integers(0, 39)))
def test_trivial_constraint_weight_is_z_with_one_check(probs, seed, pruned):
    logw = torch.tensor(probs, dtype=torch.float64).log()
    logw = logw - torch.logsumexp(logw, 0)  # an LM: Z = 1 before pruning
    keep = [i for i in range(len(probs)) if i not in pruned] or [0]
    logw[[i for i in range(len(probs)) if i not in keep]] = -math.inf
    z = float(torch.logsumexp(logw, 0))
    step = awrs_step(logw, lambda x: True, torch.Generator().manual_seed(seed))
    assert step.rejected_round1 == 0 and step.rejected_round2 == 0
    assert step.log_weight == pytest.approx(z, abs=1e-12)
    assert step.checks <= 2  # one in round 1; round 2 checks only if it visits another token first


def test_every_token_rejected_gives_zero_weight():
    step = draws(P, set(), 1)[0]
    assert step.token is None and step.log_weight == -math.inf and step.checks == 4


def test_zero_probability_tokens_are_never_visited():
    logw = torch.tensor([0.0, -math.inf, -math.inf])
    seen = []
    step = awrs_step(logw, lambda x: seen.append(x) or False, torch.Generator().manual_seed(0))
    assert seen == [0] and step.token is None


def test_masking_is_exact_lcd():
    steps = draws(P, {1, 3}, 2000, sampler=masking_step)
    assert all(s.checks == 4 and s.log_weight == pytest.approx(math.log(0.4)) for s in steps)
    counts = [sum(s.token == t for s in steps) for t in (1, 3)]
    assert chisquare_pvalue(counts, [2000 * 0.75, 2000 * 0.25]) > 1e-3


def test_awrs_checks_far_below_vocabulary_on_a_peaked_distribution():
    logw = torch.log_softmax(torch.randn(50_000, generator=torch.Generator().manual_seed(0)) * 4, 0)
    allowed = set(range(0, 50_000, 2))
    gen = torch.Generator().manual_seed(1)
    checks = [awrs_step(logw, lambda x: x in allowed, gen).checks for _ in range(50)]
    assert sum(checks) / len(checks) < 10
