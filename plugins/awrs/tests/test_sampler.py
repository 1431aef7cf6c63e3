"""The AWRS step against the paper's guarantees on tiny enumerable vocabularies."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_awrs import sampler as sampler_module
from tokensmith_awrs.regex import RegexConstraint
from tokensmith_awrs.sampler import auto_step, awrs_step, geometric_step, masking_step, recursive_step
from tokensmith_awrs.smc import symbol_check
from tokensmith_awrs.spaces import prefix_index

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


def exact_weighted_frequencies(step_fn, weights, accepted, check=None):
    """``E[w_hat 1{x* = x}]`` for every token, by enumerating every visiting order (and, for
    the two-round variant, every round-2 order over what round 1 left); ``check`` defaults to
    membership in ``accepted``."""
    check = check or (lambda x: x in accepted)
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
                step = step_fn(logw, check, None)
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
    assert_matches_pc_and_zc(steps, probs, accepted)


def assert_matches_pc_and_zc(steps, probs, accepted):
    """Sampled steps of an estimator: accepted tokens in proportion p(x) / Z_c (chi-square) and
    E[w 1{x}] = p(x) for each accepted x (within 4 standard errors)."""
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


# -- implied rejections ----------------------------------------------------------------------
# Implied rejections: a rejected token whose walk died at byte ``j`` shows every token extending
# its first ``j + 1`` bytes rejected too (``allows`` is prefix-closed), so the one-pass estimators
# drop those unchecked. Exactness by enumeration of every visiting order, the sampled geometric
# estimator by sampling, and the sets themselves against brute force.


def grouped_check(accepted, groups):
    """``c`` with an ``implied`` oracle: rejecting ``x`` shows ``groups[x]`` rejected (all of
    them outside ``accepted``, as the constraint's prefix closure guarantees)."""
    def check(x):
        return x in accepted

    check.implied = lambda x: torch.tensor(sorted(groups.get(x, ())), dtype=torch.long)
    return check


@settings(max_examples=15, deadline=None)
@given(weights=st.lists(st.one_of(st.just(0.0), st.floats(0.01, 1.0)), min_size=2, max_size=5),
       data=st.data())
def test_recursive_with_implied_rejections_is_properly_weighted_exactly(weights, data):
    """E[w_hat 1{x* = x}] = w(x) c(x) to 1e-12 over every visiting order, whatever sets of
    rejected tokens each rejection implies."""
    accepted = data.draw(st.sets(st.sampled_from(range(len(weights)))))
    if not any(weights[x] > 0 for x in accepted):
        return
    rejected = [x for x in range(len(weights)) if x not in accepted]
    groups = {x: data.draw(st.sets(st.sampled_from(rejected))) for x in rejected} if rejected else {}
    got = exact_weighted_frequencies(recursive_step, weights, accepted, check=grouped_check(accepted, groups))
    for x, value in got.items():
        assert value == pytest.approx(weights[x] * (x in accepted), abs=1e-12)


def test_a_wrong_implied_set_is_caught_by_the_enumeration():
    """The enumeration can fail: an oracle that calls an accepted token rejected biases it."""
    weights, accepted = [0.4, 0.3, 0.2, 0.1], {1, 3}
    with pytest.raises(AssertionError):  # x* is not the first accepted token, or a weight is off
        got = exact_weighted_frequencies(recursive_step, weights, accepted,
                                         check=grouped_check(accepted, {0: {0, 3}, 2: {2}}))
        for x, value in got.items():
            assert value == pytest.approx(weights[x] * (x in accepted), abs=1e-12)


def test_implied_rejections_cut_checks_in_every_order():
    """Tokens 0-3 share a dead prefix: after the first of them is rejected, the rest are never
    checked, in every one of the 120 orders (without them up to five checks)."""
    weights, accepted = [0.3, 0.25, 0.2, 0.15, 0.1], {4}
    groups = {x: {0, 1, 2, 3} for x in range(4)}
    logw = torch.tensor(weights, dtype=torch.float64).log()
    for order in itertools.permutations(range(5)):
        with pytest.MonkeyPatch.context() as mp:
            forced_keys(mp, [order])
            step = recursive_step(logw, grouped_check(accepted, groups), None)
        # x* first: its tail token is checked (rejected), w = Z p(x*); a rejection first: it
        # implies the other three, x* is all the mass left, w = Z (1 - m): two checks either way
        assert step.token == 4 and step.checks == 2
        assert step.log_weight == pytest.approx(math.log(0.1), abs=1e-12)


@pytest.mark.parametrize("probs,accepted,groups", [(P, {1, 3}, {0: {0, 2}, 2: {2}}),
                                                   ([0.9, 0.05, 0.05], {1}, {0: {0, 2}, 2: {0, 2}}),
                                                   ([0.1, 0.8, 0.1], {0, 2}, {1: {1}})])
def test_geometric_with_implied_rejections_matches_pc_and_zc(probs, accepted, groups):
    """The with-replacement reconstruction counts draws of the dropped tokens among the
    Geometric(1 - m) phantoms: frequencies (chi-square) and E[w 1{x}] = p(x) c(x). (``auto`` is
    this estimator or the recursive one, proven exactly above.)"""
    logw = torch.tensor(probs, dtype=torch.float64).log()
    gen = torch.Generator().manual_seed(5)
    check = grouped_check(accepted, groups)
    steps = [geometric_step(logw, check, gen) for _ in range(1500)]
    assert_matches_pc_and_zc(steps, probs, accepted)


@settings(max_examples=60, deadline=None)
@given(pieces=st.lists(st.binary(max_size=3).map(lambda b: bytes(x % 3 + 253 * (x % 2) for x in b)),
                       min_size=1, max_size=30),
       head=st.binary(max_size=2).map(lambda b: bytes(x % 3 + 253 * (x % 2) for x in b)))
def test_prefix_index_finds_exactly_the_extensions(pieces, head):
    """Bytes 0, 1, 2, 253, 254, 255: the 0xff carry of the range's end included."""
    stops = frozenset({0})
    index = prefix_index(tuple(pieces), stops)
    want = {i for i, b in enumerate(pieces) if b and i not in stops and b.startswith(head)}
    assert set(index.extending(head).tolist()) == want


class VocabSpace:
    """The part of a TokenSpace that symbol_check reads, over a hand-made vocabulary."""

    def __init__(self, pieces, stops):
        self.pieces, self.stops, self.masks = pieces, stops, 0

    def masker(self, constraint):
        return None

    def index(self):
        return prefix_index(self.pieces, self.stops)


PIECES = (b"",) + tuple(bytes(t) for n in (1, 2, 3) for t in itertools.product(b"abc", repeat=n))


@settings(max_examples=40, deadline=None)
@given(pattern=st.sampled_from([r"(ab|ba)*c?", r"a+b{0,2}c", r"(abc)*|c+"]),
       prefix=st.text(alphabet="abc", max_size=4).map(str.encode))
def test_regex_implied_sets_are_rejected_and_complete(pattern, prefix):
    """For every rejected token: its implied set is rejected by brute force (sound), and holds
    every token extending its dead prefix (the longest allowed start, plus one byte)."""
    constraint = RegexConstraint(pattern)
    if not constraint.allows(prefix):
        return
    space = VocabSpace(PIECES, frozenset({0}))
    check = symbol_check(constraint, space, prefix)
    for x, piece in enumerate(PIECES):
        if x == 0:
            assert check(x) == constraint.accepts(prefix) and check.implied(x) is None
            continue
        assert check(x) == constraint.allows(prefix + piece)
        if constraint.allows(prefix + piece):
            continue
        implied = set(check.implied(x).tolist())
        live = max(j for j in range(len(piece) + 1) if constraint.allows(prefix + piece[:j]))
        dead = piece[:live + 1]
        assert x in implied
        assert all(not constraint.allows(prefix + PIECES[y]) for y in implied)
        assert implied == {y for y in range(1, len(PIECES)) if PIECES[y].startswith(dead)}
