"""The `sstoken` mask and recipe: the contract, the runner, warm-up and resume."""

from __future__ import annotations

import math

import pytest
import torch
from tokensmith_sstoken import SSToken, SSTokenRecipe
from tokensmith_sstoken.objectives import HISTORY_FILE
from transformers import TrainerCallback

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


class _Snapshots(TrainerCallback):
    """θ after every optimizer step (θ_1 ... θ_k), for the EMA's closed form."""

    def __init__(self, model):
        self.model, self.thetas = model, []

    def on_step_end(self, args, state, control, **kwargs):
        self.thetas.append({n: p.detach().clone() for n, p in self.model.named_parameters()})


def _ema_run(tmp_path, name, steps, decay, resume=None):
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    model, _ = tiny_llama(tokenizer, hidden_size=16, layers=1)
    theta0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask = SSToken(ratio=0.5, history_mode="ema", ema_decay=decay).with_history(model)
    snapshots = _Snapshots(model)
    result = tokensmith.run_recipe(
        model=model, tokenizer=tokenizer, train_data=EXAMPLES, objectives=[mask], recipe=SSTokenRecipe(),
        data={"prompt": "prompt", "response": "response", "max_length": 48}, callbacks=[snapshots],
        arguments={"steps": steps, "batch_size": 4, "lr": 1e-2, "progress": "off", "save_every": 2,
                   "save_final": False, "seed": 0},
        output_dir=tmp_path / name, resume=resume)
    return result, mask, theta0, snapshots.thetas


def test_ema_history_is_the_closed_form_after_k_steps_and_resumes_from_its_checkpoint(tmp_path):
    decay, k = 0.7, 3
    full, mask, theta0, thetas = _ema_run(tmp_path, "ema", k, decay)
    assert len(thetas) == k
    # θ_his(k) = α^k θ_0 + Σ_i (1 - α) α^(k-i) θ_i
    for name, his in mask.history.named_parameters():
        expected = decay ** k * theta0[name] + sum((1 - decay) * decay ** (k - i) * thetas[i - 1][name]
                                                   for i in range(1, k + 1))
        assert torch.allclose(his, expected, atol=1e-6), name
    # the history moved away from the base and is not the trained model either
    name = "model.embed_tokens.weight"
    assert not torch.allclose(mask.history.get_parameter(name), theta0[name])
    assert not torch.allclose(mask.history.get_parameter(name), thetas[-1][name])
    assert all(not p.requires_grad for p in mask.history.parameters())
    # resumed at step 2: θ_his comes back from the checkpoint, so step 3 and θ_his(3) are the same
    assert (tmp_path / "ema" / "checkpoint-2" / HISTORY_FILE).is_file()
    resumed, again, _, _ = _ema_run(tmp_path, "ema", k, decay, resume=tmp_path / "ema" / "checkpoint-2")
    assert resumed.losses[-1][1] == pytest.approx(full.losses[2][1], rel=1e-5)
    for (name, a), b in zip(mask.history.named_parameters(), again.history.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name
    # precomputed (base) history losses do not fit an EMA history
    ids = torch.tensor([[1, 2, 3, 4]])
    with pytest.raises(IncompatibleComponentsError, match="ema"):
        again.history_losses({"input_ids": ids, "labels": ids, "history_losses": torch.zeros(1, 4)})
