import math
import statistics

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_baselines.objectives import (
    ExactMatch,
    GroupNormalized,
    RandomFraction,
    ResponseOnly,
    TokenCrossEntropy,
    Uniform,
    last_boxed,
    last_number,
)

from tokensmith import IGNORE_INDEX, ConfigError, InputError, compose, token_cross_entropy
from tokensmith.testing import (
    AdvantageContract,
    LossContract,
    RewardContract,
    TokenMaskContract,
    TokenWeightsContract,
    objective_batches,
)


class TestCrossEntropy(LossContract):
    @pytest.fixture
    def loss(self):
        return TokenCrossEntropy()


class TestResponseOnly(TokenMaskContract):
    @pytest.fixture
    def mask(self):
        return ResponseOnly()


class TestRandomFraction(TokenMaskContract):
    @pytest.fixture(params=[0.3, 1.0])
    def mask(self, request):
        return RandomFraction(fraction=request.param, seed=3)


class TestUniform(TokenWeightsContract):
    @pytest.fixture
    def weights(self):
        return Uniform()


class TestExactMatch(RewardContract):
    @pytest.fixture(params=["last-number", "boxed", "text"])
    def reward(self, request):
        return ExactMatch(extract=request.param)

    @pytest.fixture
    def reward_info(self):
        return lambda prompts, completions: {"answer": [str(len(c) % 3) for c in completions]}


class TestGroupNormalized(AdvantageContract):
    @pytest.fixture(params=["group", "batch", "none"])
    def advantage(self, request):
        return GroupNormalized(scale=request.param)


def test_the_objectives_build_by_name(installed_registry):
    for name, cls in [("cross-entropy", TokenCrossEntropy), ("response-only", ResponseOnly),
                      ("random-fraction", RandomFraction), ("uniform", Uniform),
                      ("exact-match", ExactMatch), ("group-normalized", GroupNormalized)]:
        record = installed_registry.get("objective", name)
        assert record.distribution == "tokensmith-baselines"
        assert isinstance(installed_registry.build("objective", name), cls)
    built = installed_registry.build("objective", {"type": "random-fraction", "fraction": 0.25, "seed": 4})
    assert (built.fraction, built.seed) == (0.25, 4)
    for bad in ({"type": "random-fraction", "fraction": 0.0}, {"type": "exact-match", "extract": "first"},
                {"type": "group-normalized", "eps": 0.0}, {"type": "group-normalized", "scale": True}):
        with pytest.raises(ConfigError):
            installed_registry.build("objective", bad)


# -- masks and weights --------------------------------------------------------------------

def _eligible(batch):
    eligible = batch["labels"] != IGNORE_INDEX
    if "response_mask" in batch:
        eligible &= batch["response_mask"]
    return eligible


@settings(max_examples=60, deadline=None)
@given(drawn=objective_batches(max_rows=4, max_length=12, predicted=None), fraction=st.floats(0.01, 1.0),
       seed=st.integers(0, 2**20))
def test_random_fraction_keeps_exactly_a_rounded_share_of_the_response(drawn, fraction, seed):
    batch, outputs = drawn
    selected = RandomFraction(fraction=fraction, seed=seed)(batch, outputs)
    n = int(_eligible(batch).sum())
    assert int(selected.sum()) == (max(1, math.floor(fraction * n + 0.5)) if n else 0)
    assert not (selected & ~_eligible(batch)).any()
    assert torch.equal(selected, RandomFraction(fraction=fraction, seed=seed)(dict(batch), outputs))


def test_random_fraction_is_uniform_over_the_response_tokens():
    """Each of the N response tokens is kept with probability k/N: a chi-square test over 600
    seeds (a fixed set, so the test cannot flake)."""
    labels = torch.arange(20).reshape(2, 10) % 7
    labels[:, :3] = IGNORE_INDEX  # a prompt of 3 tokens per row
    response = torch.ones_like(labels, dtype=torch.bool)
    response[1, 9] = False  # and one token outside the response: 13 response tokens
    batch = {"labels": labels, "response_mask": response}
    draws = 600
    counts = sum(RandomFraction(fraction=0.25, seed=s)(batch, None).long() for s in range(draws))
    eligible = _eligible(batch)
    n = int(eligible.sum())
    k = max(1, math.floor(0.25 * n + 0.5))
    assert (n, k) == (13, 3) and counts[~eligible].sum() == 0
    expected = draws * k / n
    chi2 = float(((counts[eligible] - expected) ** 2 / expected).sum())
    assert chi2 < 32.9, (chi2, counts.tolist())  # 12 degrees of freedom: the 0.999 quantile


def test_random_fraction_differs_between_batches_and_seeds():
    labels = torch.arange(40).reshape(2, 20) % 9
    a = RandomFraction(0.5, seed=0)({"labels": labels}, None)
    assert not torch.equal(a, RandomFraction(0.5, seed=1)({"labels": labels}, None))
    other = labels.clone()
    other[0, 0] = 8
    assert not torch.equal(a, RandomFraction(0.5, seed=0)({"labels": other}, None))


def test_response_only_and_uniform_follow_the_response_mask():
    labels = torch.tensor([[IGNORE_INDEX, 4, 5, 6, IGNORE_INDEX]])
    response = torch.tensor([[False, False, True, True, True]])
    assert ResponseOnly()({"labels": labels}, None).tolist() == [[False, True, True, True, False]]
    batch = {"labels": labels, "response_mask": response}
    assert ResponseOnly()(batch, None).tolist() == [[False, False, True, True, False]]
    assert Uniform()(batch, None).tolist() == [[0.0, 0.0, 1.0, 1.0, 0.0]]
    with pytest.raises(InputError, match="response_mask"):
        ResponseOnly()({"labels": labels, "response_mask": response[:, :3]}, None)


def test_response_only_with_a_response_mask_is_the_models_loss_on_prompt_ignored_labels(tiny_llama):
    model, _ = tiny_llama
    ids = torch.randint(0, model.config.vocab_size, (3, 12), generator=torch.Generator().manual_seed(0))
    response = torch.zeros_like(ids, dtype=torch.bool)
    response[0, 4:], response[1, 7:], response[2, 2:9] = True, True, True
    outputs = model(input_ids=ids)
    loss = compose([ResponseOnly()])({"input_ids": ids, "labels": ids, "response_mask": response}, outputs)
    reference = model(input_ids=ids, labels=ids.masked_fill(~response, IGNORE_INDEX)).loss
    assert torch.equal(loss, reference)
    uniform = compose([Uniform()])({"input_ids": ids, "labels": ids, "response_mask": response}, outputs)
    assert torch.allclose(uniform, reference * response[:, 1:].sum() / ids[:, 1:].numel(), rtol=1e-6)


def test_random_fraction_in_a_loss_is_the_mean_over_the_kept_tokens(tiny_llama):
    model, _ = tiny_llama
    ids = torch.randint(0, model.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(1))
    batch = {"input_ids": ids, "labels": ids}
    outputs = model(input_ids=ids)
    kept = RandomFraction(0.4, seed=5)(batch, outputs)
    loss = compose([TokenCrossEntropy(), RandomFraction(0.4, seed=5)])(batch, outputs)
    logp = outputs.logits.float().log_softmax(-1)
    terms = [-logp[b, t - 1, ids[b, t]] for b in range(2) for t in range(1, 16) if kept[b, t]]
    assert len(terms) == round(0.4 * 30)
    assert torch.allclose(loss, torch.stack(terms).mean(), rtol=1e-5)
    masked = {"labels": ids.masked_fill(~kept, IGNORE_INDEX)}
    assert torch.allclose(token_cross_entropy(masked, outputs), loss)


# -- exact match ----------------------------------------------------------------------------

@pytest.mark.parametrize(("completion", "answer", "expected"), [
    ("The answer is 72.", "72", 1.0),
    ("so it costs 1,000.50 dollars", "1000.5", 1.0),
    ("so 72", "#### 72", 1.0),
    ("72 or maybe 73", "72", 0.0),
    ("-3", "-3.0", 1.0),
    ("no number here", "7", 0.0),
    ("x = 2, y = 10", 10, 1.0),
    ("7", "", 0.0),
])
def test_exact_match_last_number(completion, answer, expected):
    assert ExactMatch()(["q"], [completion], answer=[answer]) == [expected]


@pytest.mark.parametrize(("completion", "answer", "expected"), [
    (r"thus \boxed{\frac{1}{2}}", r"\frac{1}{2}", 1.0),
    (r"\boxed{3} then \boxed{ 4 }", "4", 1.0),
    (r"\boxed{1,000}", r"\boxed{1000}", 1.0),
    (r"\boxed{x^{2}}", "x^{2}", 1.0),
    ("4", "4", 0.0),  # no \boxed in the completion: no final answer
    (r"\boxed{4", "4", 0.0),  # unbalanced
])
def test_exact_match_boxed(completion, answer, expected):
    assert ExactMatch(extract="boxed")(["q"], [completion], answer=[answer]) == [expected]


def test_exact_match_text_and_helpers():
    text = ExactMatch(extract="text")
    assert text(["a", "b"], ["  Paris\n", "paris"], answer=["Paris", "Paris"]) == [1.0, 0.0]
    assert last_number("a 1 b 2,500 c") == 2500 and last_number("none") is None
    assert last_boxed(r"\boxed{a{b}c}") == "a{b}c" and last_boxed("x") is None


def test_exact_match_needs_one_answer_per_completion():
    with pytest.raises(InputError, match="answer"):
        ExactMatch()(["q"], ["1"])
    with pytest.raises(InputError, match="list"):
        ExactMatch()(["q"], ["1"], answer="1")
    with pytest.raises(InputError, match="answer"):
        ExactMatch()(["q", "r"], ["1", "2"], answer=["1"])


# -- group-normalized advantage: a brute-force loop --------------------------------------------

def _reference(rewards, groups, scale, eps=1e-4):
    out = []
    batch_std = statistics.stdev(rewards) if len(rewards) > 1 else 0.0
    for r, g in zip(rewards, groups):
        members = [x for x, h in zip(rewards, groups) if h == g]
        mean = sum(members) / len(members)
        std = statistics.stdev(members) if len(members) > 1 else 0.0
        if scale == "none":
            out.append(r - mean)
        else:
            out.append((r - mean) / ((std if scale == "group" else batch_std) + eps))
    return out


@settings(max_examples=80, deadline=None)
@given(pairs=st.lists(st.tuples(st.floats(-100, 100), st.integers(0, 4)), min_size=1, max_size=12),
       scale=st.sampled_from(["group", "batch", "none"]), eps=st.sampled_from([1e-4, 1e-2, 1.0]))
def test_group_normalized_equals_a_per_group_loop(pairs, scale, eps):
    rewards, groups = [r for r, _ in pairs], [g for _, g in pairs]
    got = GroupNormalized(scale=scale, eps=eps)(rewards, groups)
    assert got.dtype == torch.float32 and got.shape == (len(rewards),)
    expected = torch.tensor(_reference(rewards, groups, scale, eps), dtype=torch.float64)
    assert torch.allclose(got.double(), expected, rtol=1e-5, atol=1e-4)


def test_group_normalized_zero_variance_and_singletons_are_zero():
    got = GroupNormalized()([1.0, 1.0, 1.0, 0.0, 5.0], [0, 0, 0, 1, 2])
    assert got.tolist() == [0.0] * 5
    assert GroupNormalized(scale="batch")([2.0, 2.0], [0, 1]).tolist() == [0.0, 0.0]
    assert GroupNormalized()([], []).shape == (0,)


def test_group_normalized_refuses_bad_input():
    with pytest.raises(InputError, match="finite"):
        GroupNormalized()([float("nan"), 1.0], [0, 0])
    with pytest.raises(InputError, match="integers"):
        GroupNormalized()([0.0, 1.0], [0.5, 0.0])
    with pytest.raises(InputError):
        GroupNormalized()(["a"], [0])
