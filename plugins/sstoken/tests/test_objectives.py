"""The `sstoken` mask and recipe: the contract, the runner, warm-up and resume."""

from __future__ import annotations

import math

import pytest
import torch
from tokensmith_sstoken import SSToken, SSTokenRecipe

import tokensmith
from tokensmith import IGNORE_INDEX, IncompatibleComponentsError
from tokensmith.testing import TokenMaskContract, tiny_llama, tiny_tokenizer


class _Given(SSToken):
    """ssToken on the contract's random batches, which carry logits only: a uniform causal
    attention map and a constant history loss stand in for what a model would give."""

    def attention(self, outputs):
        t = outputs.logits.shape[1]
        causal = torch.tril(torch.ones(t, t))
        return (causal / causal.sum(-1, keepdim=True)).expand(outputs.logits.shape[0], t, t)

    def history_losses(self, batch):
        return torch.ones(batch["labels"].shape)


class TestContract(TokenMaskContract):
    @pytest.fixture
    def mask(self):
        return _Given(ratio=0.5)


EXAMPLES = [{"prompt": f"Q: what is {a} plus {b}? A:",
             "response": f" {a + b}, since {a} and {b} make {a + b}."} for a in range(4) for b in range(3)]


class _Recording(SSToken):
    """The mask, recording each batch's response count, kept count and step."""

    seen: list = []

    def __call__(self, batch, outputs):
        kept = super().__call__(batch, outputs)
        self.seen.append((tokensmith.response_tokens(batch).sum(1), kept.sum(1), self.step))
        return kept


def _run(tmp_path, name, steps=3, resume=None, warmup=0):
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    model, _ = tiny_llama(tokenizer, hidden_size=16, layers=1)
    mask = _Recording(ratio=0.5, warmup_steps=warmup).with_history(model)
    mask.seen = []
    result = tokensmith.run_recipe(
        model=model, tokenizer=tokenizer, train_data=EXAMPLES, objectives=[mask],
        recipe=SSTokenRecipe(), data={"prompt": "prompt", "response": "response", "max_length": 48},
        arguments={"steps": steps, "batch_size": 4, "lr": 3e-3, "progress": "off", "save_every": 2,
                   "save_final": False, "seed": 0},
        output_dir=tmp_path / name, resume=resume)
    return result, mask.seen


def test_recipe_trains_with_exactly_ceil_rho_r_kept_and_resumes_exactly(tmp_path):
    full, seen = _run(tmp_path, "full", warmup=2)
    assert len(full.losses) == 3 and all(math.isfinite(loss) for _, loss in full.losses)
    for response, kept, _ in seen:
        assert kept.tolist() == [math.ceil(0.5 * int(r)) for r in response]
    assert [step for *_, step in seen] == [0, 1, 2]  # the recipe's step counter (warm-up)
    resumed, seen_again = _run(tmp_path, "full", resume=tmp_path / "full" / "checkpoint-2", warmup=2)
    assert [step for *_, step in seen_again] == [2]
    assert resumed.losses[-1][1] == pytest.approx(full.losses[2][1], rel=1e-5)


def test_without_attention_or_history_it_says_what_to_do():
    tokenizer = tiny_tokenizer()
    model, _ = tiny_llama(tokenizer, hidden_size=16, layers=1)
    ids = torch.tensor([tokenizer.encode("Q: two plus two? A: four").ids])
    labels = ids.clone()
    labels[:, :4] = IGNORE_INDEX
    batch = {"input_ids": ids, "labels": labels}
    with pytest.raises(IncompatibleComponentsError, match="attention"):
        SSToken().with_history(model)(batch, model(input_ids=ids))
    model = SSTokenRecipe().prepare(model, None)
    with pytest.raises(IncompatibleComponentsError, match="history"):
        SSToken()(batch, model(input_ids=ids))
    kept = SSToken(ratio=0.5).with_history(model)(batch, model(input_ids=ids))
    assert int(kept.sum()) == math.ceil(0.5 * int((labels != IGNORE_INDEX).sum()))


def test_registered_and_built_from_a_context():
    registry = tokensmith.default_registry()
    tokenizer = tiny_tokenizer()
    model, _ = tiny_llama(tokenizer, hidden_size=16, layers=1)
    ctx = tokensmith.BuildContext(runtime=tokensmith.Runtime(), model=model, tokenizer=tokenizer)
    mask = registry.build("objective", {"type": "sstoken", "ratio": 0.3}, ctx)
    assert mask.ratio == 0.3 and mask.history is not model
    assert all(not p.requires_grad for p in mask.history.parameters())
    assert isinstance(registry.build("recipe", "sstoken"), SSTokenRecipe)
