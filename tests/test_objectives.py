"""Typed objectives: token cross-entropy against the model's own loss and a brute-force loop,
composition (masks select, weights multiply), the role prologues, the contract suites (they
pass on the core loss and fail on broken objectives), and the transformers Trainer adapters
(the same training, bit for bit, as the Trainer's own loss)."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokensmith import (
    IGNORE_INDEX,
    Advantage,
    Component,
    ComponentError,
    ConfigError,
    IncompatibleComponentsError,
    InputError,
    Loss,
    ObjectiveTrainer,
    Reward,
    TokenCrossEntropy,
    TokenMask,
    TokenWeights,
    compose,
    compute_loss_func,
    hookimpl,
    response_tokens,
    role_of,
    token_cross_entropy,
)
from tokensmith.testing import (
    AdvantageContract,
    LossContract,
    RewardContract,
    TokenMaskContract,
    objective_batches,
    tiny_llama,
)


def _per_token_nll(batch, outputs):
    """-log p(labels[t] | logits[t-1]) for every position (0 where not predicted): a loop."""
    logp = outputs.logits.detach().double().log_softmax(-1)
    labels = batch["labels"]
    out = torch.zeros(labels.shape, dtype=torch.float64)
    for b in range(labels.shape[0]):
        for t in range(1, labels.shape[1]):
            if labels[b, t] != IGNORE_INDEX:
                out[b, t] = -logp[b, t - 1, labels[b, t]]
    return out


class EvenPositions(TokenMask):
    name = "even-positions"

    def __call__(self, batch, outputs):
        t = torch.arange(batch["labels"].shape[-1])
        return response_tokens(batch) & (t % 2 == 0)


class FirstTokenBoost(TokenWeights):
    name = "first-token-boost"

    def __call__(self, batch, outputs):
        w = response_tokens(batch).float()
        w[..., :4] *= 3.0
        return w


# -- token cross-entropy --------------------------------------------------------------------

@pytest.mark.parametrize("num_items", [None, 17])
def test_token_cross_entropy_is_the_models_own_loss_bit_for_bit(tiny_tokenizer, num_items):
    model, _ = tiny_llama(tiny_tokenizer)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (3, 14), generator=gen)
    labels = ids.masked_fill(torch.rand(ids.shape, generator=gen) < 0.3, IGNORE_INDEX)
    extra = {} if num_items is None else {"num_items_in_batch": torch.tensor(num_items)}
    outputs = model(input_ids=ids, labels=labels, **extra)
    ours = token_cross_entropy({"labels": labels}, outputs,
                               num_items=None if num_items is None else torch.tensor(num_items))
    assert torch.equal(ours, outputs.loss)


@settings(max_examples=40, deadline=None)
@given(drawn=objective_batches(max_rows=3, max_length=8, predicted=None),
       levels=st.lists(st.sampled_from([0.0, 0.25, 1.0, 3.0]), min_size=24, max_size=24))
def test_token_cross_entropy_equals_a_weighted_loop(drawn, levels):
    batch, outputs = drawn
    n = batch["labels"].numel()
    weights = torch.tensor(levels[:n]).reshape(batch["labels"].shape) if n <= 24 else None
    nll = _per_token_nll(batch, outputs)
    count = max(1, int((batch["labels"][:, 1:] != IGNORE_INDEX).sum()))
    plain = token_cross_entropy(batch, outputs)
    assert torch.allclose(plain.double(), nll.sum() / count, rtol=1e-5, atol=1e-6)
    if weights is not None:
        weighted = token_cross_entropy({**batch, "token_weights": weights}, outputs)
        assert torch.allclose(weighted.double(), (nll * weights.double()).sum() / count, rtol=1e-5, atol=1e-6)


def test_a_batch_with_nothing_to_predict_has_loss_zero():
    labels = torch.full((2, 5), IGNORE_INDEX)
    logits = torch.randn(2, 5, 7, requires_grad=True)
    loss = token_cross_entropy({"labels": labels}, types.SimpleNamespace(logits=logits))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


# -- composition ----------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(drawn=objective_batches(max_rows=3, max_length=9, predicted=None))
def test_masks_select_and_weights_multiply_like_a_loop(drawn):
    batch, outputs = drawn
    nll = _per_token_nll(batch, outputs)
    selected = EvenPositions()(batch, outputs)
    weights = FirstTokenBoost()(batch, outputs).double()
    kept = selected & (batch["labels"] != IGNORE_INDEX)
    kept[:, 0] = False  # the first label is never predicted
    count = max(1, int(kept.sum()))
    masked = compose([EvenPositions()])(batch, outputs)
    assert torch.allclose(masked.double(), (nll * kept).sum() / count, rtol=1e-5, atol=1e-6)
    both = compose([FirstTokenBoost(), EvenPositions(), TokenCrossEntropy()])
    assert torch.allclose(both(batch, outputs).double(), (nll * kept * weights).sum() / count,
                          rtol=1e-5, atol=1e-6)
    product = both.token_weights(batch, outputs)
    assert torch.equal(product, (selected & (batch["labels"] != IGNORE_INDEX)).float() * weights.float())
    # num_items counted before selection (the Trainer's count) is scaled to the selection
    before = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    if before:
        assert torch.allclose(compose([EvenPositions()])(batch, outputs, num_items=torch.tensor(before)),
                              masked, rtol=1e-6)


def test_composition_checks_what_masks_and_weights_return():
    batch = {"labels": torch.zeros(2, 4, dtype=torch.long)}
    outputs = types.SimpleNamespace(logits=torch.randn(2, 4, 5))

    class Short(TokenMask):
        name = "short"

        def __call__(self, batch, outputs):
            return torch.ones(2, 3, dtype=torch.bool)

    class Floats(TokenMask):
        name = "floats"

        def __call__(self, batch, outputs):
            return torch.ones(2, 4)

    class Ints(TokenWeights):
        name = "ints"

        def __call__(self, batch, outputs):
            return torch.ones(2, 4, dtype=torch.long)

    with pytest.raises(ComponentError, match=r"mask 'short'.*shape \(2, 3\)"):
        compose([Short()])(batch, outputs)
    with pytest.raises(ComponentError, match="bool"):
        compose([Floats()])(batch, outputs)
    with pytest.raises(ComponentError, match="weights 'ints'.*float"):
        compose([Ints()])(batch, outputs)


def test_compose_refuses_two_losses_rewards_and_non_objectives():
    with pytest.raises(ConfigError, match="2 losses"):
        compose([TokenCrossEntropy(), TokenCrossEntropy()])
    with pytest.raises(ConfigError, match="RL"):
        compose([CountDigits()])
    with pytest.raises(ConfigError, match="role"):
        compose([lambda batch, outputs: 0])
    assert role_of(TokenCrossEntropy()) == "loss"
    assert compose(EvenPositions()).masks[0].name == "even-positions"


def test_a_loss_without_num_items_is_called_without_it():
    class Plain(Loss):
        name = "plain"

        def __call__(self, batch, outputs):
            return outputs.logits.sum() * 0 + 1.0

    outputs = types.SimpleNamespace(logits=torch.randn(1, 3, 2))
    out = compose([Plain(), EvenPositions()])({"labels": torch.zeros(1, 3, dtype=torch.long)}, outputs,
                                               num_items=5)
    assert out.item() == 1.0


# -- the role prologues and the contract suites ---------------------------------------------

class CountDigits(Reward):
    name = "count-digits"

    def __call__(self, prompts, completions, **info):
        prompts, completions = self.check_inputs(prompts, completions, info)
        return [float(sum(ch.isdigit() for ch in c)) for c in completions]


class Centred(Advantage):
    name = "centred"

    def __call__(self, rewards, groups):
        r, g = self.check_inputs(rewards, groups)
        means = {int(k): r[g == k].mean() for k in g.unique()}
        return torch.stack([r[i] - means[int(g[i])] for i in range(len(r))]) if len(r) else r


class TestTokenCrossEntropy(LossContract):
    @pytest.fixture
    def loss(self):
        return TokenCrossEntropy()


class TestEvenPositions(TokenMaskContract):
    @pytest.fixture
    def mask(self):
        return EvenPositions()


class TestCountDigits(RewardContract):
    @pytest.fixture
    def reward(self):
        return CountDigits()


class TestCentred(AdvantageContract):
    @pytest.fixture
    def advantage(self):
        return Centred()


def test_the_reward_prologue_refuses_bad_batches():
    reward = CountDigits()
    with pytest.raises(InputError, match="2 prompts for 1 completions"):
        reward(["a", "b"], ["1"])
    with pytest.raises(InputError, match="column 'answer' has 1 values for 2"):
        reward(["a", "b"], ["1", "2"], answer=["1"])
    with pytest.raises(InputError, match="hold str"):
        reward(["a"], [[{"role": "assistant", "content": "1"}]])
    with pytest.raises(InputError, match="reward 'count-digits'"):
        reward("a", "1")


def test_the_advantage_prologue_refuses_bad_batches():
    with pytest.raises(InputError, match="one length"):
        Centred()([1.0, 2.0], [0])
    with pytest.raises(InputError, match="finite"):
        Centred()([float("inf")], [0])
    with pytest.raises(InputError, match="1-D numbers"):
        Centred()(["x"], [0])


class UsesIgnoredLogits(Loss):
    name = "uses-ignored-logits"

    def __call__(self, batch, outputs):
        return token_cross_entropy(batch, outputs) + outputs.logits.sum()


class MarksPrompts(TokenMask):
    name = "marks-prompts"

    def __call__(self, batch, outputs):
        return torch.ones_like(batch["labels"], dtype=torch.bool)


class CumulativeSum(Advantage):
    name = "cumulative-sum"

    def __call__(self, rewards, groups):
        r, _ = self.check_inputs(rewards, groups)
        return r.cumsum(0)


class _Drawn:
    """Stands in for hypothesis' ``data``: every draw returns the given value."""

    def __init__(self, value):
        self.value = value

    def draw(self, strategy):
        return self.value


def test_the_loss_contract_catches_a_loss_that_reads_ignored_logits():
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 3, 4, IGNORE_INDEX]])
    drawn = ({"labels": labels, "input_ids": labels.clamp(min=0)},
             types.SimpleNamespace(logits=torch.randn(1, 5, 11, requires_grad=True)))
    check = LossContract.test_ignored_positions_do_not_count.hypothesis.inner_test
    check(LossContract(), loss=TokenCrossEntropy(), data=_Drawn(drawn), seed=0)
    with pytest.raises(AssertionError):
        check(LossContract(), loss=UsesIgnoredLogits(), data=_Drawn(drawn), seed=0)


@pytest.mark.parametrize(("contract", "method", "fixture", "broken"), [
    (TokenMaskContract, "test_shaped_like_the_labels_on_response_tokens_only", "token_objective",
     MarksPrompts()),
    (AdvantageContract, "test_equivariant_to_order_and_blind_to_labels", "advantage", CumulativeSum()),
])
def test_the_contracts_catch_broken_objectives(contract, method, fixture, broken):
    with pytest.raises(AssertionError):
        getattr(contract(), method)(**{fixture: broken})


# -- the Trainer adapters -------------------------------------------------------------------

PROMPT = 5  # the first 5 tokens of every example are its prompt


def _examples(vocab_size, *, response_mask=False, prompt_ignored=False, n=8, length=12):
    gen = torch.Generator().manual_seed(3)
    out = []
    for _ in range(n):
        ids = torch.randint(0, vocab_size, (length,), generator=gen)
        labels = ids.clone()
        if prompt_ignored:
            labels[:PROMPT] = IGNORE_INDEX
        example = {"input_ids": ids.tolist(), "attention_mask": [1] * length, "labels": labels.tolist()}
        if response_mask:
            example["response_mask"] = [i >= PROMPT for i in range(length)]
        out.append(example)
    return out


def _train(trainer_cls, tokenizer, tmp_path, examples, **kwargs):
    from transformers import TrainingArguments, default_data_collator

    model, _ = tiny_llama(tokenizer)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2,
                             gradient_accumulation_steps=2, learning_rate=1e-2, logging_steps=1,
                             save_strategy="no", report_to="none", use_cpu=True, seed=0, disable_tqdm=True)
    trainer = trainer_cls(model=model, args=args, train_dataset=examples, data_collator=default_data_collator,
                          **kwargs)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same_training(a, b):
    assert a[0] == b[0], (a[0], b[0])
    assert all(torch.equal(a[1][k], b[1][k]) for k in a[1])


def test_objective_trainer_and_compute_loss_func_train_exactly_like_the_models_loss(tiny_tokenizer, tmp_path):
    from transformers import Trainer

    examples = _examples(tiny_tokenizer.vocab_size)
    reference = _train(Trainer, tiny_tokenizer, tmp_path, examples)
    start = tiny_llama(tiny_tokenizer)[0].state_dict()
    assert not all(torch.equal(start[k], reference[1][k]) for k in start), "training changed nothing"
    _same_training(reference, _train(ObjectiveTrainer, tiny_tokenizer, tmp_path, examples,
                                     objectives=[TokenCrossEntropy()]))
    _same_training(reference, _train(Trainer, tiny_tokenizer, tmp_path, examples,
                                     compute_loss_func=compute_loss_func(TokenCrossEntropy())))


class ResponseMask(TokenMask):
    """Reads batch["response_mask"] itself (unlike response_tokens, which falls back)."""

    name = "needs-response-mask"

    def __call__(self, batch, outputs):
        return batch["response_mask"].bool() & (batch["labels"] != IGNORE_INDEX)


def test_objective_trainer_hands_the_objectives_the_whole_batch(tiny_tokenizer, tmp_path):
    """response_mask survives the Trainer's unused-column removal, is not given to the model,
    and a response mask trains exactly like labels that ignore the prompt."""
    from transformers import Trainer

    reference = _train(Trainer, tiny_tokenizer, tmp_path, _examples(tiny_tokenizer.vocab_size,
                                                                    prompt_ignored=True))
    masked = _train(ObjectiveTrainer, tiny_tokenizer, tmp_path,
                    _examples(tiny_tokenizer.vocab_size, response_mask=True), objectives=[ResponseMask()])
    _same_training(reference, masked)


def test_compute_loss_func_sends_objectives_needing_the_batch_to_objective_trainer(tiny_tokenizer):
    model, _ = tiny_llama(tiny_tokenizer)
    ids = torch.randint(0, tiny_tokenizer.vocab_size, (1, 6))
    loss_func = compute_loss_func([ResponseMask()])
    with pytest.raises(IncompatibleComponentsError, match="ObjectiveTrainer"):
        loss_func(model(input_ids=ids), ids, num_items_in_batch=5)
    with pytest.raises(IncompatibleComponentsError, match="labels"):
        compute_loss_func(TokenCrossEntropy())(model(input_ids=ids), None)


def test_objective_trainer_refuses_two_losses_and_builds_names(tiny_tokenizer, tmp_path, make_registry):
    from transformers import TrainingArguments

    class Plugin:
        @hookimpl
        def tokensmith_register_objectives(self):
            return [Component("even-positions", f"{__name__}:EvenPositions", "every other token")]

    model, _ = tiny_llama(tiny_tokenizer)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    with pytest.raises(ConfigError, match="both"):
        ObjectiveTrainer(model=model, args=args, objectives=[TokenCrossEntropy()],
                         compute_loss_func=compute_loss_func(TokenCrossEntropy()))
    trainer = ObjectiveTrainer(model=model, args=args, objectives=["even-positions"],
                               registry=make_registry(Plugin()))
    assert trainer.objective.name == "cross-entropy * even-positions"
    with pytest.raises(ConfigError, match="no objectives"):
        compute_loss_func([])


# -- docs/objectives.md ---------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[1] / "docs" / "objectives.md"


def doc_examples(*, trl: bool) -> list[str]:
    """The runnable Python blocks of docs/objectives.md (not the contract-suite sketch); the
    TRL ones run in tests/trl."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    return [b for b in blocks if "class Test" not in b and ("import trl" in b) == trl]


@pytest.mark.needs_baselines
@pytest.mark.parametrize("index", range(len(doc_examples(trl=False))))
def test_the_docs_examples_run(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(doc_examples(trl=False)[index], f"docs/objectives.md[{index}]", "exec"), {})
    assert capsys.readouterr().out
