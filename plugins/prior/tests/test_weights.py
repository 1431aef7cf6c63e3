"""PRIOR's weights: the paper's invariants, the contract, and the reference model path."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_prior import PRIORWeights, prior_weights
from tokensmith_prior.weights import reference_probabilities

import tokensmith
from tokensmith import IGNORE_INDEX, IncompatibleComponentsError
from tokensmith.testing import TokenWeightsContract, tiny_llama, tiny_tokenizer


class _Fixed(PRIORWeights):
    """PRIOR on the contract's batches: reference logits a fixed function of the input ids."""

    def reference_logits(self, batch):
        return 3.0 * torch.nn.functional.one_hot(batch["input_ids"] % 11, 11).float()


class TestContract(TokenWeightsContract):
    @pytest.fixture
    def weights(self):
        return _Fixed()


def _case(seed, b=3, t=10, v=6, prompt=2):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g) * 2
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[:, :prompt] = IGNORE_INDEX
    labels[0, -3:] = IGNORE_INDEX
    return logits, labels


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), alpha=st.floats(0.0, 4.0), prompt=st.integers(1, 8))
def test_weights_average_exactly_one_per_caption(seed, alpha, prompt):
    logits, labels = _case(seed, prompt=prompt)
    w = prior_weights(logits, labels, alpha=alpha)
    eligible = labels != IGNORE_INDEX
    for r in range(labels.shape[0]):
        if not eligible[r].any():  # a caption with no token left has no weights to average
            continue
        assert float(w[r][eligible[r]].mean()) == pytest.approx(1.0, abs=1e-5)
    assert torch.equal(w[~eligible], torch.zeros(int((~eligible).sum())))


def test_matches_the_formula_by_hand():
    logits, labels = _case(7)
    w = prior_weights(logits, labels, alpha=2.0)
    for r in range(3):
        tokens = [t for t in range(10) if labels[r, t] != IGNORE_INDEX]
        raw = [(1 - torch.softmax(logits[r, t - 1].double(), -1)[labels[r, t]].item()) ** 2 for t in tokens]
        for t, x in zip(tokens, raw, strict=True):
            assert float(w[r, t]) == pytest.approx(len(tokens) * x / sum(raw), rel=1e-5)


def _loss(weights, logits, labels):
    batch = {"labels": labels, "input_ids": labels.clamp(min=0)}
    outputs = type("O", (), {"logits": logits})()
    objectives = [] if weights is None else [weights]
    return float(tokensmith.compose(objectives)(batch, outputs))


class _Given(PRIORWeights):
    def __init__(self, logits, alpha):
        super().__init__(alpha=alpha)
        self.given = logits

    def reference_logits(self, batch):
        return self.given


def test_alpha_zero_or_a_uniform_reference_is_plain_ntp_and_the_naive_sum_is_not():
    logits, labels = _case(11)
    plain = _loss(None, logits, labels)
    ref = torch.randn_like(logits)
    assert _loss(_Given(ref, 0.0), logits, labels) == pytest.approx(plain, rel=1e-6)
    assert _loss(_Given(torch.zeros_like(logits), 1.0), logits, labels) == pytest.approx(plain, rel=1e-6)
    assert _loss(_Given(ref, 1.0), logits, labels) != pytest.approx(plain, rel=1e-3)
    # unnormalised (1 - P)^α weights do not average 1: the loss scale drifts from NTP's
    raw = (1 - reference_probabilities(torch.zeros_like(logits), labels)) * (labels != IGNORE_INDEX)
    assert float(raw[labels != IGNORE_INDEX].mean()) != pytest.approx(1.0, abs=1e-3)


def test_the_unpredictable_token_weighs_most_and_gets_the_gradient():
    # a caption "this is a digit <d>": the reference predicts the template, not the digit
    v, labels = 12, torch.tensor([[IGNORE_INDEX, 1, 2, 3, 4, 7]])
    ref = torch.full((1, 6, v), -5.0)
    for t in range(1, 6):
        ref[0, t - 1, labels[0, t]] = 5.0 if t < 5 else -5.0  # the digit at t = 5 is a guess
    w = prior_weights(ref, labels)
    assert int(w[0].argmax()) == 5 and float(w[0, 5]) > 4 * float(w[0, 1:5].max())
    logits = torch.zeros(1, 6, v, requires_grad=True)
    batch = {"labels": labels, "input_ids": labels.clamp(min=0)}
    tokensmith.compose([_Given(ref, 1.0)])(batch, type("O", (), {"logits": logits})()).backward()
    norms = logits.grad[0].norm(dim=-1)
    assert int(norms.argmax()) == 4  # logits[4] predict the digit


def test_reference_from_a_model_source_and_errors():
    tokenizer = tiny_tokenizer()
    weights = tokensmith.default_registry().build(
        "objective", {"type": "prior", "reference": {"source": "tiny-llama", "hidden_size": 16, "layers": 1}})
    assert all(not p.requires_grad for p in weights.model.parameters())
    ids = torch.tensor([tokenizer.encode("a caption of the digit seven").ids])
    labels = ids.clone()
    labels[:, 0] = IGNORE_INDEX
    w = weights({"input_ids": ids, "labels": labels}, None)
    assert float(w[0, 1:].mean()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(IncompatibleComponentsError, match="reference"):
        PRIORWeights()({"input_ids": ids, "labels": labels}, None)
    with pytest.raises(tokensmith.ConfigError):
        PRIORWeights(reference=3)
    model, _ = tiny_llama(tokenizer, hidden_size=16, layers=1)
    assert PRIORWeights().with_reference(model).model is model
