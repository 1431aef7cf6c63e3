"""Contract suites for the five objective roles (docs/objectives.md), with the hypothesis
strategy that draws their inputs. Subclass one and provide the fixture its docstring names::

    class TestMyMask(TokenMaskContract):
        @pytest.fixture
        def mask(self):
            return MyMask()

Batches are drawn small: a few rows of a few positions, labels with IGNORE_INDEX runs (a
prompt, holes, right padding), an optional ``response_mask`` and random logits over
``vocab_size`` (a class attribute, 11 unless a subclass sets another).
"""

from __future__ import annotations

import copy
import types
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokensmith.core.errors import InputError
from tokensmith.core.objectives import (
    IGNORE_INDEX,
    RESPONSE_MASK_KEY,
    TOKEN_WEIGHTS_KEY,
    compose,
    response_tokens,
    shifted_labels,
)

_settings = settings(max_examples=30, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.differing_executors])


@st.composite
def objective_batches(draw: Any, *, vocab_size: int = 11, max_rows: int = 3, max_length: int = 9,
                      response_mask: bool | None = None, predicted: bool | None = True) -> tuple[dict, Any]:
    """``(batch, outputs)``: ``input_ids``, ``attention_mask``, ``labels`` (IGNORE_INDEX on a
    prompt, on holes and on right padding), ``response_mask`` (always, never, or when drawn:
    ``response_mask=None``) and ``outputs.logits`` (float32, requires grad).

    ``predicted=True`` draws batches with at least one predicted label (after the shift),
    ``False`` batches with none, ``None`` either."""
    import torch

    rows, length = draw(st.integers(1, max_rows)), draw(st.integers(2, max_length))
    labels, attention, response = [], [], []
    for _ in range(rows):
        pad = draw(st.integers(0, length - 1))
        prompt = draw(st.integers(0, length - pad))
        tokens = draw(st.lists(st.integers(0, vocab_size - 1), min_size=length, max_size=length))
        holes = draw(st.lists(st.booleans(), min_size=length, max_size=length))
        row = [IGNORE_INDEX if i < prompt or i >= length - pad or (holes[i] and i % 3 == 0) else t
               for i, t in enumerate(tokens)]
        labels.append(row)
        attention.append([int(i < length - pad) for i in range(length)])
        start = draw(st.integers(0, length))
        response.append([start <= i < length - pad for i in range(length)])
    labels_t = torch.tensor(labels, dtype=torch.long)
    if predicted is False:
        labels_t[:] = IGNORE_INDEX
    elif predicted and not (shifted_labels(labels_t) != IGNORE_INDEX).any():
        labels_t[0, -1] = draw(st.integers(0, vocab_size - 1))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    ids = torch.where(labels_t == IGNORE_INDEX, torch.randint(0, vocab_size, labels_t.shape,
                                                              generator=generator), labels_t)
    batch = {"input_ids": ids, "attention_mask": torch.tensor(attention), "labels": labels_t}
    with_response = draw(st.booleans()) if response_mask is None else response_mask
    if with_response:
        batch[RESPONSE_MASK_KEY] = torch.tensor(response, dtype=torch.bool)
    scale = draw(st.sampled_from([0.1, 1.0, 5.0]))
    logits = (scale * torch.randn(rows, length, vocab_size, generator=generator)).requires_grad_(True)
    return batch, types.SimpleNamespace(logits=logits)


def _perturbed(outputs: Any, where: Any, seed: int) -> Any:
    """The outputs with the logits replaced by others at the positions ``where`` is True."""
    import torch

    logits = outputs.logits.detach()
    noise = 3.0 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(seed))
    return types.SimpleNamespace(logits=torch.where(where.unsqueeze(-1), logits + noise, logits))


def _same(a: Any, b: Any) -> bool:
    import torch

    return torch.allclose(a.detach().double(), b.detach().double(), rtol=1e-5, atol=1e-6)


def _snapshot(batch: dict) -> dict:
    return {k: v.clone() for k, v in batch.items()}


def _unchanged(batch: dict, before: dict) -> bool:
    import torch

    return batch.keys() == before.keys() and all(torch.equal(batch[k], before[k]) for k in batch)


class LossContract:
    """Needs fixture ``loss`` (a :class:`~tokensmith.Loss`): a finite scalar, differentiable
    in the logits, blind to the logits that predict IGNORE_INDEX labels and to positions of
    weight 0 in ``batch["token_weights"]``, finite on a batch with nothing to predict."""

    vocab_size = 11

    @_settings
    @given(data=st.data())
    def test_a_finite_differentiable_scalar(self, loss, data):
        import torch

        batch, outputs = data.draw(objective_batches(vocab_size=self.vocab_size))
        before = _snapshot(batch)
        value = loss(batch, outputs)
        assert isinstance(value, torch.Tensor) and value.dim() == 0 and value.is_floating_point()
        assert torch.isfinite(value)
        value.backward()
        assert outputs.logits.grad is not None and torch.isfinite(outputs.logits.grad).all()
        assert _unchanged(batch, before), "the loss changed its batch"

    @_settings
    @given(data=st.data())
    def test_nothing_to_predict_is_finite(self, loss, data):
        import torch

        batch, outputs = data.draw(objective_batches(vocab_size=self.vocab_size, predicted=False))
        value = loss(batch, outputs)
        assert torch.isfinite(value)
        value.backward()
        assert outputs.logits.grad is None or torch.isfinite(outputs.logits.grad).all()

    @_settings
    @given(data=st.data(), seed=st.integers(0, 1000))
    def test_ignored_positions_do_not_count(self, loss, data, seed):
        batch, outputs = data.draw(objective_batches(vocab_size=self.vocab_size))
        ignored = shifted_labels(batch["labels"]) == IGNORE_INDEX
        assert _same(loss(batch, outputs), loss(batch, _perturbed(outputs, ignored, seed)))

    @_settings
    @given(data=st.data(), seed=st.integers(0, 1000))
    def test_token_weights_are_honoured(self, loss, data, seed):
        import torch

        batch, outputs = data.draw(objective_batches(vocab_size=self.vocab_size))
        levels = data.draw(st.lists(st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.0]),
                                    min_size=batch["labels"].numel(), max_size=batch["labels"].numel()))
        weights = torch.tensor(levels).reshape(batch["labels"].shape)
        weighted = {**batch, TOKEN_WEIGHTS_KEY: weights}
        shifted = torch.nn.functional.pad(weights, (0, 1))[..., 1:]
        zero = (shifted == 0) | (shifted_labels(batch["labels"]) == IGNORE_INDEX)
        assert _same(loss(weighted, outputs), loss(weighted, _perturbed(outputs, zero, seed)))
        ones = {**batch, TOKEN_WEIGHTS_KEY: torch.ones_like(weights)}
        assert _same(loss(ones, outputs), loss(batch, outputs)), "weights of 1 changed the loss"

    @_settings
    @given(data=st.data())
    def test_deterministic_and_composable(self, loss, data):
        batch, outputs = data.draw(objective_batches(vocab_size=self.vocab_size))
        first = loss(batch, outputs)
        assert _same(first, loss(batch, outputs))
        assert _same(first, compose([loss])(batch, outputs))


class _PerTokenContract:
    vocab_size = 11
    boolean = False

    def _check(self, value: Any, batch: dict) -> None:
        import torch

        labels = batch["labels"]
        assert isinstance(value, torch.Tensor) and tuple(value.shape) == tuple(labels.shape), \
            f"shape {tuple(getattr(value, 'shape', ()))}, labels {tuple(labels.shape)}"
        if self.boolean:
            assert value.dtype == torch.bool, f"a mask is bool, not {value.dtype}"
        else:
            assert value.is_floating_point(), f"weights are float, not {value.dtype}"
            assert torch.isfinite(value).all() and (value >= 0).all()
        outside = ~response_tokens(batch)
        assert not value[outside].any(), \
            "non-zero on an IGNORE_INDEX label or outside batch['response_mask']"

    @_settings
    @given(data=st.data())
    def test_shaped_like_the_labels_on_response_tokens_only(self, token_objective, data):
        batch, outputs = data.draw(objective_batches(vocab_size=self.vocab_size, predicted=None))
        before = _snapshot(batch)
        self._check(token_objective(batch, outputs), batch)
        assert _unchanged(batch, before), "the objective changed its batch"

    @_settings
    @given(data=st.data())
    def test_deterministic(self, token_objective, data):
        import torch

        batch, outputs = data.draw(objective_batches(vocab_size=self.vocab_size))
        assert torch.equal(token_objective(batch, outputs), token_objective(batch, outputs))

    @_settings
    @given(data=st.data())
    def test_composes_into_a_finite_loss(self, token_objective, data):
        import torch

        batch, outputs = data.draw(objective_batches(vocab_size=self.vocab_size, predicted=None))
        value = compose([token_objective])(batch, outputs)
        assert value.dim() == 0 and torch.isfinite(value)
        value.backward()
        assert torch.isfinite(outputs.logits.grad).all()


class TokenMaskContract(_PerTokenContract):
    """Needs fixture ``mask`` (a :class:`~tokensmith.TokenMask`): bool, shaped like the labels,
    False on IGNORE_INDEX labels and outside ``response_mask``, deterministic, composable."""

    boolean = True

    @pytest.fixture
    def token_objective(self, mask):
        return mask


class TokenWeightsContract(_PerTokenContract):
    """Needs fixture ``weights`` (a :class:`~tokensmith.TokenWeights`): float, finite, >= 0,
    shaped like the labels, 0 on IGNORE_INDEX labels and outside ``response_mask``,
    deterministic, composable."""

    @pytest.fixture
    def token_objective(self, weights):
        return weights


_texts = st.one_of(st.text(max_size=24),
                   st.builds("{} {}".format, st.text(max_size=12), st.integers(-1000, 1000)),
                   st.builds("{} {:.2f}".format, st.text(max_size=8), st.floats(-100, 100)))


class RewardContract:
    """Needs fixture ``reward`` (a :class:`~tokensmith.Reward`); override ``reward_info``
    (``(prompts, completions) -> dict`` of the columns it needs, e.g. ``answer``) when it needs
    any. One finite float per completion, a typed error on mismatched lengths, pure."""

    @pytest.fixture
    def reward_info(self):
        return lambda prompts, completions: {}

    @_settings
    @given(pairs=st.lists(st.tuples(_texts, _texts), max_size=6))
    def test_one_finite_float_per_completion(self, reward, reward_info, pairs):
        import math

        prompts, completions = [p for p, _ in pairs], [c for _, c in pairs]
        info = reward_info(prompts, completions)
        saved = copy.deepcopy((prompts, completions, info))
        rewards = reward(prompts, completions, **info)
        assert isinstance(rewards, list) and len(rewards) == len(completions)
        assert all(isinstance(r, float) and math.isfinite(r) for r in rewards), rewards
        assert (prompts, completions, info) == saved, "the reward changed its inputs"
        assert reward(prompts, completions, **info) == rewards, "not deterministic"

    @_settings
    @given(pairs=st.lists(st.tuples(_texts, _texts), min_size=1, max_size=4))
    def test_mismatched_lengths_are_input_errors(self, reward, reward_info, pairs):
        prompts, completions = [p for p, _ in pairs], [c for _, c in pairs]
        info = reward_info(prompts, completions)
        with pytest.raises(InputError):
            reward(prompts, completions + ["extra"], **info)
        for key, column in info.items():
            if isinstance(column, list):
                with pytest.raises(InputError):
                    reward(prompts, completions, **{**info, key: column[:-1]})

    def test_a_string_is_not_a_batch(self, reward, reward_info):
        info = reward_info(["p"], ["c"])
        with pytest.raises(InputError):
            reward("p", "c", **info)


@st.composite
def _grouped_rewards(draw: Any, *, constant: bool = False) -> tuple[list[float], list[int]]:
    sizes = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    labels = draw(st.lists(st.integers(-50, 50), min_size=len(sizes), max_size=len(sizes), unique=True))
    values = st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5]), st.floats(-10, 10))
    rewards, groups = [], []
    for size, label in zip(sizes, labels):
        value = draw(values)
        for _ in range(size):
            rewards.append(value if constant else draw(values))
            groups.append(label)
    order = draw(st.permutations(range(len(rewards))))
    return [rewards[i] for i in order], [groups[i] for i in order]


class AdvantageContract:
    """Needs fixture ``advantage`` (a :class:`~tokensmith.Advantage`): one finite value per
    completion (zero-variance groups included), equivariant to the order of the completions,
    blind to the group labels' values, a typed error on mismatched lengths."""

    def _call(self, advantage, rewards, groups):
        import torch

        return torch.as_tensor(advantage(torch.tensor(rewards), torch.tensor(groups)), dtype=torch.float64)

    @_settings
    @given(drawn=_grouped_rewards())
    def test_one_finite_value_per_completion(self, advantage, drawn):
        import torch

        rewards, groups = drawn
        out = self._call(advantage, rewards, groups)
        assert tuple(out.shape) == (len(rewards),) and torch.isfinite(out).all()
        assert torch.equal(out, self._call(advantage, rewards, groups)), "not deterministic"

    @_settings
    @given(drawn=_grouped_rewards(constant=True))
    def test_zero_variance_groups_are_finite(self, advantage, drawn):
        import torch

        assert torch.isfinite(self._call(advantage, *drawn)).all()

    @_settings
    @given(drawn=_grouped_rewards(), data=st.data())
    def test_equivariant_to_order_and_blind_to_labels(self, advantage, drawn, data):
        import torch

        rewards, groups = drawn
        out = self._call(advantage, rewards, groups)
        order = data.draw(st.permutations(range(len(rewards))))
        permuted = self._call(advantage, [rewards[i] for i in order], [groups[i] for i in order])
        assert torch.allclose(permuted, out[list(order)], rtol=1e-6, atol=1e-9)
        relabel = {g: 1000 + 7 * k for k, g in enumerate(sorted(set(groups), reverse=True))}
        assert torch.allclose(self._call(advantage, rewards, [relabel[g] for g in groups]), out,
                              rtol=1e-6, atol=1e-9)

    def test_mismatched_lengths_are_input_errors(self, advantage):
        import torch

        with pytest.raises(InputError):
            advantage(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0, 0]))
        with pytest.raises(InputError):
            advantage(torch.tensor([[1.0, 0.0]]), torch.tensor([[0, 0]]))
