"""The AWRS step against the paper's guarantees on tiny enumerable vocabularies."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_awrs import sampler as sampler_module
from tokensmith_awrs.sampler import auto_step, awrs_step, geometric_step, masking_step, recursive_step

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


# -- the one-pass variants (genlm-control's recursive and geometric estimators) ---------------

VARIANTS = {"two-round": awrs_step, "recursive": recursive_step, "geometric": geometric_step,
            "auto": auto_step}


def plackett_luce(order, probs) -> float:
    """Probability that Gumbel-max sampling without replacement visits ``order`` (a full
    permutation of the support) under ``probs``."""
    left, out = sum(probs[x] for x in order), 1.0
    for x in order:
        out *= probs[x] / left
        left -= probs[x]
    return out


def forced_keys(mp, orders):
    """Make each call of the sampler's key draw return keys that visit the next order."""
    queue = iter(orders)

    def keys(logp, generator):
        out = torch.full(logp.shape, -math.inf, dtype=torch.float32)
        for rank, x in enumerate(next(queue)):
            out[x] = -float(rank)
        return out

    mp.setattr(sampler_module, "_gumbel_keys", keys)


def exact_weighted_frequencies(step_fn, weights, accepted):
    """``E[w_hat 1{x* = x}]`` for every token, by enumerating every visiting order (and, for
    the two-round variant, every round-2 order over what round 1 left)."""
    support = [x for x, w in enumerate(weights) if w > 0]
    logw = torch.tensor([math.log(w) if w > 0 else -math.inf for w in weights], dtype=torch.float64)
    out = dict.fromkeys(support, 0.0)
    for first in itertools.permutations(support):
        cut = next((k for k, x in enumerate(first) if x in accepted), None)
        if cut is None:
            continue
        second_orders = [()]
        if step_fn is awrs_step:
            second_orders = list(itertools.permutations([x for x in support if x not in first[:cut]]))
        for second in second_orders:
            prob = plackett_luce(first, weights) * (plackett_luce(second, weights) if second else 1.0)
            with pytest.MonkeyPatch.context() as mp:
                forced_keys(mp, [first, second])
                step = step_fn(logw, lambda x: x in accepted, None)
            assert step.token == first[cut]  # x* is the first accepted token of the first walk
            out[step.token] += prob * math.exp(step.log_weight)
    return out


@pytest.mark.parametrize("variant", ["two-round", "recursive"])
@settings(max_examples=12, deadline=None)
@given(weights=st.lists(st.one_of(st.just(0.0), st.floats(0.01, 1.0)), min_size=2, max_size=4),
       data=st.data())
def test_properly_weighted_exactly_by_enumerating_every_order(variant, weights, data):
    """E[w_hat 1{x* = x}] = w(x) c(x) for every token: the weight is unbiased for Z_c *and*
    properly weighted jointly with the token (what SMC needs), exactly, with no sampling."""
    accepted = data.draw(st.sets(st.sampled_from(range(len(weights)))))
    if not any(weights[x] > 0 for x in accepted):
        return
    got = exact_weighted_frequencies(VARIANTS[variant], weights, accepted)
    for x, value in got.items():
        assert value == pytest.approx(weights[x] * (x in accepted), abs=1e-12)


def test_recursive_worked_example_has_no_variance():
    """V = {a: 0.5 accepted, b: 0.5 rejected}: a first, b next (rejected) gives Z p(a) = 0.5;
    b first (m = 0.5), then a with nothing after it gives Z (1 - m) = 0.5."""
    values = {round(math.exp(s.log_weight), 12) for s in draws([0.5, 0.5], {0}, 200, sampler=recursive_step)}
    assert values == {0.5}


@pytest.mark.parametrize("variant", ["geometric", "auto"])
@pytest.mark.parametrize("probs,accepted", [(P, {1, 3}), ([0.9, 0.05, 0.05], {1}),
                                            ([0.9, 0.05, 0.05], {0, 2})])
def test_sampled_variants_match_pc_and_zc(variant, probs, accepted):
    """The geometric estimator draws its phantom counts, so it is checked by sampling: token
    frequencies (chi-square) and the mean weight, and the weighted frequencies E[w 1{x}]."""
    steps = draws(probs, accepted, 2000, seed=2, sampler=VARIANTS[variant])
    tokens = sorted(accepted)
    z_c = sum(probs[t] for t in tokens)
    if len(tokens) > 1:
        counts = [sum(s.token == t for s in steps) for t in tokens]
        assert chisquare_pvalue(counts, [len(steps) * probs[t] / z_c for t in tokens]) > 1e-3
    for t in tokens:
        w = torch.tensor([math.exp(s.log_weight) * (s.token == t) for s in steps])
        assert abs(float(w.mean()) - probs[t]) < 4 * float(w.std()) / math.sqrt(len(w)) + 1e-12


def test_geometric_weights_are_negative_binomial_estimates():
    """With A accepts and n rejections (phantoms included) the weight is Z (A - 1) / (A + n - 1):
    1 / (1 + n) for A = 2, and a smaller variance with more accepts."""
    for step in draws([0.5, 0.3, 0.2], {0}, 50, seed=3, sampler=geometric_step):
        n = 1 / math.exp(step.log_weight) - 1
        assert n == pytest.approx(round(n)) and round(n) >= 0
    logw = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64).log()
    variances = []
    for accepts in (2, 6):
        gen = torch.Generator().manual_seed(4)
        w = torch.tensor([math.exp(geometric_step(logw, lambda x: x == 0, gen, accepts).log_weight)
                          for _ in range(800)])
        assert abs(float(w.mean()) - 0.5) < 4 * float(w.std()) / math.sqrt(len(w))
        variances.append(float(w.var()))
    assert variances[1] < variances[0]


@pytest.mark.parametrize("variant", ["recursive", "geometric", "auto"])
@settings(max_examples=20, deadline=None)
@given(probs=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=30), seed=st.integers(0, 999))
def test_trivial_constraint_gives_z_for_every_variant(variant, probs, seed):
    logw = torch.tensor(probs, dtype=torch.float64).log()
    logw = logw - torch.logsumexp(logw, 0) + math.log(0.7)  # Z = 0.7: pruned mass
    step = VARIANTS[variant](logw, lambda x: True, torch.Generator().manual_seed(seed))
    assert step.rejected_round1 == 0 and step.rejected_round2 == 0
    assert step.log_weight == pytest.approx(math.log(0.7), abs=1e-12)
    assert step.checks <= 2


@pytest.mark.parametrize("variant", ["recursive", "geometric", "auto"])
@settings(max_examples=30, deadline=None)
@given(probs=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=12), data=st.data())
def test_variants_never_return_a_violating_token(variant, probs, data):
    accepted = data.draw(st.sets(st.integers(0, len(probs) - 1)))
    for step in draws(probs, accepted, 4, seed=data.draw(st.integers(0, 99)), sampler=VARIANTS[variant]):
        if step.token is None:
            assert not accepted and step.log_weight == -math.inf
        else:
            assert step.token in accepted and step.log_weight > -math.inf


def test_one_pass_variants_cut_checks_where_little_mass_is_accepted():
    """The regime of the issue (SmolLM2 wants words where a date must start): a few accepted
    tokens hold 2% of the mass. Round 2 of the paper's algorithm walks most of round 1's
    rejections again; the recursive estimator stops one token after x*."""
    gen = torch.Generator().manual_seed(0)
    logw = torch.log_softmax(torch.randn(20_000, generator=gen) * 3, 0)
    order = torch.argsort(logw, descending=True).tolist()
    accepted = set(order[200:20_000:50])  # none of the 200 likeliest tokens is allowed
    mean_checks = {}
    for name in ("two-round", "recursive", "auto"):
        g = torch.Generator().manual_seed(1)
        steps = [VARIANTS[name](logw, lambda x: x in accepted, g) for _ in range(30)]
        mean_checks[name] = sum(s.checks for s in steps) / 30
    assert mean_checks["recursive"] < 0.75 * mean_checks["two-round"]
    assert mean_checks["auto"] == mean_checks["recursive"]  # max p < 2/3 here: auto is recursive
