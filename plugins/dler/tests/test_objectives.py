"""DLER's objective pieces: the brief's invariants (truncated responses never rewarded 1;
whitened advantages mean 0 / std 1 over the valid tokens; dynamic sampling leaves no
zero-variance group; asymmetric clip bounds), brute-force agreement, typed errors, and the core's
contract suites."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_dler.objectives import (
    BatchWhitened,
    ClipHigher,
    CorrectSampleBoost,
    DifficultyAwareTruncation,
    TruncationPenalty,
    clip_higher_token_loss,
    informative_groups,
)

import tokensmith
from tokensmith import ConfigError, InputError
from tokensmith.testing import AdvantageContract, LossContract, RewardContract

EOS = 0


# --- truncation-penalty -------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 9), st.integers(0, 12), st.booleans(), st.booleans()),
        min_size=1,
        max_size=12,
    ),
    cap=st.integers(1, 10),
    coef=st.sampled_from([0.0, 0.1, 0.5, 0.99]),
)
def test_a_truncated_response_is_never_rewarded_one(rows, cap, coef):
    """Invariant 1, against a brute-force rule: reward 1 only when correct, ended with EOS and
    within the cap; anything cut off gets at most penalty_coef < 1."""
    reward = TruncationPenalty(max_length=cap, penalty_coef=coef, eos_token_ids=(EOS,))
    completions, answers, ids = [], [], []
    for value, length, ends, right in rows:
        completions.append(f"so {value}")
        answers.append(str(value if right else value + 1))
        body = [5] * max(length - 1, 0)
        ids.append(body + [EOS] if ends and length else body + ([7] if length else []))
    got = reward(["q"] * len(rows), completions, answer=answers, completion_ids=ids)
    for (_value, _length, _ends, right), row, r in zip(rows, ids, got):
        finished = bool(row) and row[-1] == EOS and len(row) <= cap
        assert r == (float(right) if finished else float(right) * coef)
        if not finished:
            assert r < 1.0


def test_finished_column_and_per_prompt_caps():
    reward = TruncationPenalty(max_length=8, penalty_coef=0.0)
    info = {
        "answer": ["4", "4", "4"],
        "finished": [True, False, True],
        "completion_ids": [[1, 2, 3], [1] * 8, [1] * 6],
        "truncation_length": [8, 8, 5],
    }
    # the third finished within L = 8 but not within its own L(q) = 5
    assert reward(["2+2"] * 3, ["4", "4", "4"], **info) == [1.0, 0.0, 0.0]


def test_truncation_penalty_errors_name_the_reward():
    with pytest.raises(ConfigError, match="truncation-penalty"):
        TruncationPenalty(penalty_coef=1.0)
    with pytest.raises(InputError, match="finished"):
        TruncationPenalty()(["q"], ["4"], answer=["4"])
    with pytest.raises(InputError, match="lengths"):
        TruncationPenalty(max_length=4)(["q"], ["4"], answer=["4"], finished=[True])
    with pytest.raises(InputError, match="answer"):
        TruncationPenalty(eos_token_ids=(0,))(["q"], ["4"], completion_ids=[[0]])


class TestTruncationPenaltyContract(RewardContract):
    @pytest.fixture
    def reward(self):
        return TruncationPenalty(max_length=6, eos_token_ids=(EOS,))

    @pytest.fixture
    def reward_info(self):
        def info(prompts, completions):
            return {
                "answer": ["4"] * len(completions),
                "completion_ids": [[3] * (len(c) % 9) + [EOS] for c in completions],
            }

        return info


# --- batch-whitened / correct-sample-boost ------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 5), min_size=1, max_size=5), data=st.data())
def test_whitened_advantages_have_token_mean_0_and_std_1(sizes, data):
    """Invariant 2: over the valid tokens (each completion's advantage repeated once per token),
    mean 0 and (unbiased) std 1 — and the brute force on the expanded token list agrees."""
    n = sum(sizes)
    rewards = torch.tensor(
        data.draw(st.lists(st.sampled_from([0.0, 0.1, 1.0]), min_size=n, max_size=n)), dtype=torch.float64
    )
    lengths = torch.tensor(data.draw(st.lists(st.integers(1, 7), min_size=n, max_size=n)))
    groups = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    adv = BatchWhitened()(rewards, groups, lengths=lengths).double()
    means = torch.stack([rewards[groups == k].mean() for k in range(len(sizes))])
    centred = rewards - means[groups]
    tokens = centred.repeat_interleave(lengths)
    if len(tokens) < 2 or tokens.std() < 1e-6:
        assert torch.allclose(adv, torch.zeros_like(adv), atol=1e-3)
        return
    expected = (centred - tokens.mean()) / tokens.std()
    assert torch.allclose(adv, expected, atol=1e-4)
    per_token = adv.repeat_interleave(lengths)
    assert abs(per_token.mean()) < 1e-5 and abs(per_token.std() - 1) < 1e-4


def test_whitening_is_not_grpos_per_group_std():
    """The bias DLER removes: a group with one success among many zeros gets an advantage blown
    up by its tiny std under GRPO; batch whitening scales every group by the same batch std."""
    rewards = torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0, 1.0, 1.0, 0, 0, 0, 0, 0, 0])
    groups = torch.arange(2).repeat_interleave(8)
    grpo = tokensmith.default_registry().build("objective", "group-normalized")(rewards, groups)
    ours = BatchWhitened()(rewards, groups)
    # the success-failure gap is 1 in both groups; GRPO divides it by each group's own std
    assert float(grpo[0] - grpo[1]) / float(grpo[8] - grpo[10]) > 1.25
    assert float(ours[0] - ours[1]) / float(ours[8] - ours[10]) == pytest.approx(1.0, abs=1e-6)


def test_boost_adds_to_correct_samples_only():
    rewards, groups = torch.tensor([1.0, 0.0, 0.1, 1.0]), torch.tensor([0, 0, 1, 1])
    base = BatchWhitened()(rewards, groups)
    boosted = CorrectSampleBoost(value=0.1)(rewards, groups)
    assert torch.allclose(boosted - base, torch.tensor([0.1, 0.0, 0.0, 0.1]))
    with pytest.raises(ConfigError, match="not an advantage"):
        CorrectSampleBoost(base="clip-higher")(rewards, groups)


class TestBatchWhitenedContract(AdvantageContract):
    @pytest.fixture
    def advantage(self):
        return BatchWhitened()


class TestBoostContract(AdvantageContract):
    @pytest.fixture
    def advantage(self):
        return CorrectSampleBoost(base={"type": "batch-whitened", "eps": 1e-6})


# --- dynamic sampling, difficulty-aware truncation ----------------------------------------


@settings(max_examples=40, deadline=None)
@given(data=st.data(), groups=st.integers(1, 6), size=st.integers(1, 6))
def test_dynamic_sampling_leaves_no_zero_variance_group(data, groups, size):
    """Invariant 3: every kept group has rewards that differ; every dropped one is constant."""
    rewards = torch.tensor(
        data.draw(st.lists(st.sampled_from([0.0, 0.1, 1.0]), min_size=groups * size, max_size=groups * size))
    )
    index = torch.arange(groups).repeat_interleave(size)
    keep = informative_groups(rewards, index)
    for k in range(groups):
        values = rewards[index == k]
        assert bool(keep[index == k].all()) == bool(values.max() - values.min() > 1e-6)
        assert bool(keep[index == k].any()) == bool(keep[index == k].all())


def test_dynamic_sampling_eps_guards_float_noise():
    rewards = torch.tensor([0.3, 0.3 + 1e-9, 0.0, 1.0])
    assert informative_groups(rewards, torch.tensor([0, 0, 1, 1])).tolist() == [False, False, True, True]


def test_difficulty_aware_truncation_tightens_easy_prompts():
    schedule = DifficultyAwareTruncation(min_length=32, max_length=128)
    assert schedule.lengths([0.0, 0.5, 1.0]) == [128, 80, 32]
    lengths = schedule.lengths([i / 16 for i in range(17)])
    assert lengths == sorted(lengths, reverse=True)
    with pytest.raises(ConfigError, match="min_length"):
        DifficultyAwareTruncation(min_length=10, max_length=5)
    with pytest.raises(InputError, match="pass rate"):
        schedule.lengths([1.5])


# --- clip-higher ----------------------------------------------------------------------------


def test_clip_bounds_are_asymmetric_on_a_ratio_grid():
    """Invariant 4: with ε_hi > ε_lo, a positive advantage stops gaining at 1 + ε_hi and a
    negative one at 1 − ε_lo, so the trust region is wider upwards."""
    ratios = torch.linspace(0.5, 1.6, 221, dtype=torch.float64)
    logp = torch.log(ratios)
    old = torch.zeros_like(logp)
    pos = -clip_higher_token_loss(
        logp, old, torch.ones(1, dtype=torch.float64), epsilon_low=0.2, epsilon_high=0.28, dual_clip=None
    )
    neg = clip_higher_token_loss(
        logp, old, -torch.ones(1, dtype=torch.float64), epsilon_low=0.2, epsilon_high=0.28, dual_clip=None
    )
    assert torch.allclose(pos, torch.minimum(ratios, torch.tensor(1.28, dtype=torch.float64)))
    assert torch.allclose(neg, torch.maximum(ratios, torch.tensor(0.8, dtype=torch.float64)))
    assert ClipHigher().clip_bounds() == pytest.approx((0.8, 1.28))
    upper, lower = 1.28 - 1, 1 - 0.8
    assert upper > lower
    symmetric = clip_higher_token_loss(
        logp, old, torch.ones(1, dtype=torch.float64), epsilon_low=0.2, epsilon_high=0.2, dual_clip=None
    )
    assert (-symmetric).max() == pytest.approx(1.2) and pos.max() == pytest.approx(1.28)


def test_dual_clip_bounds_negative_advantages():
    ratio = torch.tensor([1.0, 5.0, 20.0, 100.0], dtype=torch.float64)
    loss = clip_higher_token_loss(
        ratio.log(),
        torch.zeros(4, dtype=torch.float64),
        torch.tensor([-2.0], dtype=torch.float64),
        epsilon_low=0.2,
        epsilon_high=0.28,
        dual_clip=10.0,
    )
    assert loss.tolist() == pytest.approx([2.0, 10.0, 20.0, 20.0])
    with pytest.raises(ConfigError, match="dual_clip"):
        ClipHigher(dual_clip=1.1)


def test_on_policy_gradient_is_the_policy_gradient():
    """Without old_logprobs, ρ = 1 and the gradient is −A·∇log π averaged over the tokens."""
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11, requires_grad=True)
    labels = torch.tensor([[-100, 3, 4, 5, -100], [-100, -100, 1, 2, 3]])
    adv = torch.tensor([1.5, -0.5])
    loss = ClipHigher()({"labels": labels, "advantages": adv}, type("O", (), {"logits": logits})())
    loss.backward()
    ref_logits = logits.detach().clone().requires_grad_(True)
    logp = (
        torch.log_softmax(ref_logits[:, :-1], -1)
        .gather(-1, labels[:, 1:].clamp(min=0).unsqueeze(-1))
        .squeeze(-1)
    )
    mask = labels[:, 1:] != -100
    (-(adv.unsqueeze(1) * logp * mask).sum() / mask.sum()).backward()
    assert torch.allclose(logits.grad, ref_logits.grad, atol=1e-6)


def test_clip_higher_errors():
    labels = torch.tensor([[1, 2, 3]])
    outputs = type("O", (), {"logits": torch.randn(1, 3, 11)})()
    with pytest.raises(InputError, match="advantages"):
        ClipHigher()({"labels": labels}, outputs)
    with pytest.raises(InputError, match="ref"):
        ClipHigher(kl_coef=0.1)({"labels": labels, "advantages": torch.ones(1)}, outputs)
    with pytest.raises(InputError, match="old_logprobs"):
        ClipHigher()(
            {"labels": labels, "advantages": torch.ones(1), "old_logprobs": torch.zeros(1, 2)}, outputs
        )


class _WithRollouts(ClipHigher):
    """ClipHigher on a contract batch, with advantages and old/ref log-probabilities drawn from
    the labels (the contract's batches are plain LM batches)."""

    name = "clip-higher"

    def __call__(self, batch, outputs, num_items=None):
        labels = batch["labels"]
        g = torch.Generator().manual_seed(int(labels.abs().sum()) % 1000)
        extra = {
            "advantages": torch.randn(labels.shape[0], generator=g),
            "old_logprobs": -torch.rand(labels.shape, generator=g) * 3,
            "ref_logprobs": -torch.rand(labels.shape, generator=g) * 3,
        }
        return super().__call__({**batch, **extra}, outputs, num_items=num_items)


class TestClipHigherContract(LossContract):
    @pytest.fixture
    def loss(self):
        return _WithRollouts(kl_coef=0.05)


def test_registered_with_their_parameters():
    registry = tokensmith.default_registry()
    loss = registry.build("objective", {"type": "clip-higher", "epsilon_high": 0.3})
    assert isinstance(loss, ClipHigher) and loss.epsilon_high == 0.3
    assert registry.build("objective", "truncation-penalty").penalty_coef == 0.1
    assert math.isclose(registry.build("objective", "correct-sample-boost").value, 0.1)
