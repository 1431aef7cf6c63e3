"""Dynamic sampling that refills the batch (DAPO / DLER): against a brute-force walk over the
rounds — the batch is full whenever the rounds within the cap hold enough informative groups,
every kept group has a reward range above eps, and a cap reached is reported in the counters
(or raised), never silent."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_dler.sampling import DynamicSampling, SampledGroup

from tokensmith import ConfigError, InputError, ResourceLimitError

G = 3  # responses per prompt

# one round: a list of groups, each constant (all rewards equal) or not
rounds_strategy = st.lists(st.lists(st.booleans(), min_size=1, max_size=6), min_size=1, max_size=6)


def _round(constant_flags: list[bool], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    rewards = []
    for constant in constant_flags:
        if constant:
            rewards += [float(torch.randint(0, 2, (), generator=gen))] * G
        else:
            # at least one 1 and one 0: a range of 1
            rewards += [1.0, 0.0] + torch.randint(0, 2, (G - 2,), generator=gen).float().tolist()
    groups = torch.arange(len(constant_flags)).repeat_interleave(G)
    return torch.tensor(rewards), groups


@settings(max_examples=60, deadline=None)
@given(rounds=rounds_strategy, target=st.integers(1, 6), extra=st.integers(0, 5))
def test_refill_matches_a_brute_force_walk(rounds, target, extra):
    calls = []

    def sample(r):
        calls.append(r)
        return _round(rounds[r % len(rounds)], seed=r)

    result = DynamicSampling(max_extra_rounds=extra).collect(sample, target)
    # brute force: the informative groups in sampling order, round by round, until full or capped
    expected, used = [], 0
    for r in range(extra + 1):
        used += 1
        expected += [(r, k) for k, constant in enumerate(rounds[r % len(rounds)]) if not constant]
        if len(expected) >= target:
            break
    kept = [(p.round, p.group) for p in result.picks if p.informative]
    assert kept == expected[:target]
    assert calls == list(range(used)) and result.rounds == used
    full = len(expected) >= target
    assert result.cap_reached is (not full)
    assert result.short == max(0, target - len(expected))
    assert result.counters()["cap_reached"] == float(not full)
    if full:
        assert result.kept_groups == target and all(p.informative for p in result.picks)
    else:
        # the cap was reached: the batch is completed with dropped groups, all marked as such
        sampled = sum(len(rounds[r % len(rounds)]) for r in range(used))
        assert len(result.picks) == min(target, sampled)
        assert all(not p.informative for p in result.picks[result.kept_groups :])
    # invariant 3: every kept group has variance > 0 (its reward range exceeds eps)
    for p in result.picks:
        rewards, groups = _round(rounds[p.round % len(rounds)], seed=p.round)
        spread = float(rewards[groups == p.group].max() - rewards[groups == p.group].min())
        assert (spread > DynamicSampling().eps) is p.informative


def test_no_round_after_the_batch_is_full():
    calls = []

    def sample(r):
        calls.append(r)
        return _round([False, False, True], seed=r)

    result = DynamicSampling(max_extra_rounds=10).collect(sample, 3)
    # 2 informative groups per round: full after the second round, the surplus group discarded
    assert calls == [0, 1] and result.picks == (
        SampledGroup(0, 0, True),
        SampledGroup(0, 1, True),
        SampledGroup(1, 0, True),
    )
    assert result.counters() == {
        "rounds": 2.0,
        "sampled_groups": 6.0,
        "informative_groups": 4.0,
        "kept_groups": 3.0,
        "short_groups": 0.0,
        "cap_reached": 0.0,
    }


def test_a_cap_reached_is_reported_or_raised():
    def sample(r):
        return _round([True, True], seed=r)

    result = DynamicSampling(max_extra_rounds=2).collect(sample, 2)
    assert result.cap_reached and result.short == 2 and result.rounds == 3 and result.kept_groups == 0
    assert [p.informative for p in result.picks] == [False, False]
    with pytest.raises(ResourceLimitError, match="dynamic sampling.*0 informative groups of 2 after 3"):
        DynamicSampling(max_extra_rounds=2, on_cap="error").collect(sample, 2)


def test_mask_only_is_zero_extra_rounds():
    result = DynamicSampling(max_extra_rounds=0).collect(lambda r: _round([True, False, True], seed=r), 3)
    assert result.rounds == 1 and result.cap_reached and result.short == 2
    assert {(p.group, p.informative) for p in result.picks} == {(1, True), (0, False), (2, False)}


def test_eps_guards_near_zero_variance_groups():
    # float noise of 1e-9 is not variance: the group is dropped; a range of 1e-3 is kept
    rewards = torch.tensor([0.5, 0.5 + 1e-9, 0.5, 0.2, 0.2 + 1e-3, 0.2], dtype=torch.float64)
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    result = DynamicSampling(max_extra_rounds=0).collect(lambda r: (rewards, groups), 2)
    assert [(p.group, p.informative) for p in result.picks] == [(1, True), (0, False)]
    strict = DynamicSampling(eps=0.0, max_extra_rounds=0).collect(lambda r: (rewards, groups), 2)
    assert strict.kept_groups == 2


def test_configuration_and_input_errors():
    with pytest.raises(ConfigError):
        DynamicSampling(eps=-1.0)
    with pytest.raises(ConfigError):
        DynamicSampling(max_extra_rounds=-1)
    with pytest.raises(ConfigError, match="on_cap"):
        DynamicSampling(on_cap="drop")
    with pytest.raises(InputError, match="dynamic sampling"):
        DynamicSampling().collect(lambda r: _round([False], seed=0), 0)
    with pytest.raises(InputError, match="dynamic sampling"):
        DynamicSampling().collect(lambda r: (torch.ones(3), torch.zeros(2)), 1)
