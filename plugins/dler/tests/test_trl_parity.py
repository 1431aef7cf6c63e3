"""DLER against TRL where they overlap, on one fixed batch of rollouts (a tiny Llama):

- our ``clip-higher`` loss on the advantages of ``group-normalized`` (scale "batch") equals
  TRL 1.16's GRPOTrainer loss with ``loss_type="dapo"``, ``epsilon_high``, ``scale_rewards="batch"``,
  ``delta`` (= our dual clip) and ``beta`` (= our k3 KL; ``use_bias_correction_kl=False``: TRL 1.16
  multiplies the KL by the ratio by default, the DLER recipe does not): loss and every parameter
  gradient within 1e-5, with old log-probabilities perturbed so the ratios fall past both clip
  bounds;
- the DLERTrainer (TRL's GRPOTrainer running our components) gives the same loss through its
  ``_compute_loss`` on the same inputs, and trains end to end with the truncation reward.

TRL is not a first-party plugin, and the isolation env has no TRL: these tests are marked
``cross_plugin`` so that they run in tox's py311 env (which installs ``tokensmith[trl]``), and skip
where TRL is missing.
"""

from __future__ import annotations

import pytest

trl = pytest.importorskip("trl", reason="the TRL parity tests need TRL: pip install 'tokensmith[trl]'")
datasets = pytest.importorskip("datasets", reason="TRL's trainers take a datasets.Dataset")

import torch  # noqa: E402
from tokensmith_dler.objectives import (  # noqa: E402
    BatchWhitened,
    ClipHigher,
    DifficultyAwareTruncation,
    TruncationPenalty,
)
from tokensmith_dler.sampling import DynamicSampling, SampledGroup  # noqa: E402

import tokensmith  # noqa: E402
from tokensmith import IGNORE_INDEX, ResourceLimitError, Reward  # noqa: E402
from tokensmith.testing import tiny_llama  # noqa: E402

pytestmark = [
    pytest.mark.cross_plugin,
    pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning"),
]

BETA, DELTA = 0.04, 10.0


@pytest.fixture
def hf_tokenizer(tiny_tokenizer):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(tiny_tokenizer.backend.to_str())
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|endoftext|>", padding_side="left"
    )


class DistinctLetters(Reward):
    """A reward that varies between completions of a random model: distinct letters / 10."""

    name = "distinct-letters"

    def __call__(self, prompts, completions, **info):
        prompts, completions = self.check_inputs(prompts, completions, info)
        return [len({c for c in text if c.isalpha()}) / 10 for text in completions]


def _data():
    return datasets.Dataset.from_list([{"prompt": f"{i} + {i} =", "answer": str(2 * i)} for i in range(8)])


def _args(tmp_path, **kw):
    base = dict(
        use_cpu=True,
        max_steps=1,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=8,
        loss_type="dapo",
        epsilon=0.2,
        epsilon_high=0.28,
        scale_rewards="batch",
        delta=DELTA,
        beta=0.0,
        use_bias_correction_kl=False,
        use_vllm=False,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        learning_rate=1e-2,
        seed=0,
        disable_tqdm=True,
    )
    base.update(kw)
    return tokensmith.grpo_config(str(tmp_path), **base)


def _rollouts(trainer):
    """One generation batch through TRL (rewards, TRL's advantages), with old log-probabilities
    moved off the current policy so that clipping is exercised, and fixed reference
    log-probabilities for the KL term (TRL would load a reference model by name for beta != 0; a
    tiny model built in memory has none, so beta is set after construction and the reference
    log-probabilities given, as TRL's own loss reads them)."""
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    torch.manual_seed(0)
    batch = next(iter(trainer.get_train_dataloader()))
    out = trainer._generate_and_score_completions(batch)
    ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
    attention = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, ids, attention, out["completion_ids"].size(1)
        )
    g = torch.Generator().manual_seed(1)
    out["old_per_token_logps"] = logps + 0.4 * torch.randn(logps.shape, generator=g)
    out["ref_per_token_logps"] = logps + 0.3 * torch.randn(logps.shape, generator=g)
    trainer.beta = BETA
    return out


def _grads(model):
    return {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}


def _our_batch(out, advantages):
    """The same rollouts as a tokensmith objective batch: labels over the completion tokens only,
    old/ref log-probabilities indexed like the labels."""
    ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
    attention = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
    p = out["prompt_ids"].size(1)
    labels = ids.clone()
    labels[:, :p] = IGNORE_INDEX
    labels[:, p:][out["completion_mask"] == 0] = IGNORE_INDEX
    old = torch.zeros(ids.shape)
    old[:, p:] = out["old_per_token_logps"]
    ref = torch.zeros(ids.shape)
    ref[:, p:] = out["ref_per_token_logps"]
    return {
        "input_ids": ids,
        "attention_mask": attention,
        "labels": labels,
        "advantages": advantages,
        "old_logprobs": old,
        "ref_logprobs": ref,
    }


def test_clip_higher_with_batch_normalised_rewards_is_trls_dapo_loss(tiny_tokenizer, hf_tokenizer, tmp_path):
    model, _ = tiny_llama(tiny_tokenizer)
    trainer = trl.GRPOTrainer(
        model=model,
        reward_funcs=tokensmith.reward_funcs(DistinctLetters()),
        args=_args(tmp_path),
        train_dataset=_data(),
        processing_class=hf_tokenizer,
    )
    out = _rollouts(trainer)
    rewards = torch.tensor(trainer._logs["rewards"]["distinct-letters"])
    assert rewards.std() > 0, "the fixed batch must have rewards that differ"

    # advantages: ours (group mean out, batch std) are TRL's scale_rewards="batch"
    groups = torch.arange(len(rewards) // 4).repeat_interleave(4)
    ours_adv = tokensmith.default_registry().build(
        "objective", {"type": "group-normalized", "scale": "batch"}
    )(rewards, groups)
    assert torch.allclose(ours_adv, out["advantages"].float(), atol=1e-5)

    model.zero_grad()
    theirs = trainer._compute_loss(model, out)
    theirs.backward()
    theirs_grads = _grads(model)

    model.zero_grad()
    batch = _our_batch(out, ours_adv)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = ClipHigher(epsilon_low=0.2, epsilon_high=0.28, dual_clip=DELTA, kl_coef=BETA)
    ours = loss(batch, type("Out", (), {"logits": logits})(), num_items=out["num_items_in_batch"])
    ours.backward()
    ours_grads = _grads(model)

    assert abs(float(ours) - float(theirs)) <= 1e-5
    assert ours_grads.keys() == theirs_grads.keys() and ours_grads
    worst = max(float((ours_grads[k] - theirs_grads[k]).abs().max()) for k in ours_grads)
    assert worst <= 1e-5, worst
    # the batch exercises clipping: some ratios are past each bound, with advantages of both signs
    with torch.no_grad():
        ids = batch["input_ids"]
        now, _, _ = trainer._get_per_token_logps_and_entropies(
            model, ids, batch["attention_mask"], out["completion_ids"].size(1)
        )
    ratio = torch.exp(now - out["old_per_token_logps"])[out["completion_mask"].bool()]
    assert (ratio > 1.28).any() and (ratio < 0.8).any()
    assert (ours_adv > 0).any() and (ours_adv < 0).any()


def test_dler_trainer_loss_is_trls_on_the_same_inputs(tiny_tokenizer, hf_tokenizer, tmp_path):
    from tokensmith_dler.trainer import DLERTrainer

    model, _ = tiny_llama(tiny_tokenizer)
    args = _args(tmp_path)
    reference = trl.GRPOTrainer(
        model=model,
        reward_funcs=tokensmith.reward_funcs(DistinctLetters()),
        args=args,
        train_dataset=_data(),
        processing_class=hf_tokenizer,
    )
    out = _rollouts(reference)
    dler = DLERTrainer(
        model=model,
        reward_funcs=tokensmith.reward_funcs(DistinctLetters()),
        args=args,
        train_dataset=_data(),
        processing_class=hf_tokenizer,
        loss=ClipHigher(dual_clip=DELTA, kl_coef=0.0),
        advantage=BatchWhitened(),
    )
    dler.current_gradient_accumulation_steps = 1
    dler.dler_loss = ClipHigher(dual_clip=DELTA, kl_coef=BETA)  # the KL term, as TRL's beta above
    model.train()
    assert abs(float(dler._compute_loss(model, out)) - float(reference._compute_loss(model, out))) <= 1e-5


def test_dler_trainer_trains_with_dynamic_sampling_and_difficulty_aware_caps(
    tiny_tokenizer, hf_tokenizer, tmp_path
):
    from tokensmith_dler.trainer import DLERTrainer

    model, _ = tiny_llama(tiny_tokenizer)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    eos = hf_tokenizer.eos_token_id
    rewards = tokensmith.reward_funcs(
        TruncationPenalty(max_length=8, eos_token_ids=(eos,)), DistinctLetters()
    )
    seen = []

    class Spy(DLERTrainer):
        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            seen.append(
                (
                    self._dler_rewards.clone(),
                    out["completion_mask"].clone(),
                    out["advantages"].clone(),
                    [row["truncation_length"] for row in inputs],
                )
            )
            return out

    trainer = Spy(
        model=model,
        reward_funcs=rewards,
        args=_args(tmp_path, max_steps=2),
        train_dataset=_data(),
        processing_class=hf_tokenizer,
        difficulty_aware=DifficultyAwareTruncation(min_length=4, max_length=8),
        dynamic_sampling=DynamicSampling(max_extra_rounds=0),  # the mask-only path
    )
    trainer.train()
    assert len(seen) == 2
    for summed, mask, advantages, caps in seen:
        assert all(4 <= c <= 8 for c in caps)
        for k in range(len(summed) // 4):
            rows = slice(4 * k, 4 * k + 4)
            constant = float(summed[rows].max() - summed[rows].min()) <= 1e-6
            # invariant 3 in the update: a constant group has no loss tokens and zero advantage
            if constant:
                assert mask[rows].sum() == 0 and torch.all(advantages[rows] == 0)
            else:
                assert mask[rows].sum() > 0
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert any("dler/kept_groups_frac" in e for e in trainer.state.log_history)


class EvenPromptsConstant(Reward):
    """0 on prompts "i + i =" with i even (a zero-variance group), distinct letters / 10 otherwise."""

    name = "even-prompts-constant"

    def __call__(self, prompts, completions, **info):
        prompts, completions = self.check_inputs(prompts, completions, info)
        return [
            0.0 if int(p.split()[0]) % 2 == 0 else len({c for c in text if c.isalpha()}) / 10
            for p, text in zip(prompts, completions)
        ]


def test_dynamic_sampling_refills_the_batch_with_informative_groups(tiny_tokenizer, hf_tokenizer, tmp_path):
    """TRL has no dynamic sampling: DLERTrainer samples more prompts until every group of the
    update batch has reward variance, and the batch keeps its size."""
    from tokensmith_dler.trainer import DLERTrainer

    model, _ = tiny_llama(tiny_tokenizer)
    seen = []

    class Spy(DLERTrainer):
        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            seen.append((self.dler_last_sampling, self._dler_rewards.clone(), {k: v for k, v in out.items()}))
            return out

    trainer = Spy(
        model=model,
        reward_funcs=tokensmith.reward_funcs(EvenPromptsConstant()),
        args=_args(tmp_path, max_steps=2),
        train_dataset=_data(),
        processing_class=hf_tokenizer,
        dynamic_sampling=DynamicSampling(max_extra_rounds=8),
    )
    trainer.train()
    assert len(seen) == 2
    refilled = 0
    for result, rewards, out in seen:
        assert not result.cap_reached and result.kept_groups == 2
        refilled += result.rounds > 1
        assert out["completion_ids"].size(0) == 8 and out["prompt_ids"].size(0) == 8
        for k in range(2):
            rows = slice(4 * k, 4 * k + 4)
            assert float(rewards[rows].max() - rewards[rows].min()) > 1e-6
            assert out["completion_mask"][rows].sum() > 0
        assert int(out["num_items_in_batch"]) == int(out["completion_mask"].sum())
    assert refilled  # the seeded run drew an even prompt at least once
    logged = [e for e in trainer.state.log_history if "dler/dynamic_sampling/rounds" in e]
    assert logged and all(e["dler/dynamic_sampling/cap_reached"] == 0 for e in logged)


class Constant(Reward):
    name = "constant"

    def __call__(self, prompts, completions, **info):
        prompts, completions = self.check_inputs(prompts, completions, info)
        return [0.0] * len(completions)


def test_a_reached_cap_is_logged_and_masked_or_raised(tiny_tokenizer, hf_tokenizer, tmp_path):
    from tokensmith_dler.trainer import DLERTrainer

    model, _ = tiny_llama(tiny_tokenizer)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    common = dict(
        model=model,
        reward_funcs=tokensmith.reward_funcs(Constant()),
        args=_args(tmp_path, max_steps=1),
        train_dataset=_data(),
        processing_class=hf_tokenizer,
    )
    trainer = DLERTrainer(**common, dynamic_sampling=DynamicSampling(max_extra_rounds=1))
    trainer.train()
    result = trainer.dler_last_sampling
    assert result.cap_reached and result.rounds == 2 and result.short == 2
    logged = [e for e in trainer.state.log_history if "dler/dynamic_sampling/cap_reached" in e]
    assert logged and logged[0]["dler/dynamic_sampling/cap_reached"] == 1.0
    assert logged[0]["dler/dynamic_sampling/short_groups"] == 2.0
    # every group masked: nothing is learned from zero-advantage groups
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    strict = DLERTrainer(**common, dynamic_sampling=DynamicSampling(max_extra_rounds=1, on_cap="error"))
    with pytest.raises(ResourceLimitError, match="dynamic sampling"):
        strict.train()


def test_assembled_rounds_keep_trls_padding(tiny_tokenizer, hf_tokenizer, tmp_path):
    from tokensmith_dler.trainer import DLERTrainer

    model, _ = tiny_llama(tiny_tokenizer)
    trainer = DLERTrainer(
        model=model,
        reward_funcs=tokensmith.reward_funcs(Constant()),
        args=_args(tmp_path),
        train_dataset=_data(),
        processing_class=hf_tokenizer,
    )
    pad = hf_tokenizer.pad_token_id

    def rollout(prompt_width, completion_width, start):
        ids = torch.arange(start, start + 8 * prompt_width).view(8, prompt_width) % 50 + 100
        done = torch.arange(start, start + 8 * completion_width).view(8, completion_width) % 50 + 100
        return {
            "prompt_ids": ids,
            "prompt_mask": torch.ones(8, prompt_width, dtype=torch.long),
            "completion_ids": done,
            "completion_mask": torch.ones(8, completion_width, dtype=torch.long),
            "advantages": torch.zeros(8),
            "num_items_in_batch": torch.tensor(0),
        }

    a, b = rollout(3, 5, 0), rollout(6, 2, 7)
    picks = (SampledGroup(1, 1, True), SampledGroup(0, 0, True))
    merged = trainer._assemble([a, b], picks, 4)
    assert merged["prompt_ids"].shape == (8, 6) and merged["completion_ids"].shape == (8, 5)
    # round 1's group 1 first, as it is; then round 0's group 0, left-padded / right-padded
    assert torch.equal(merged["prompt_ids"][:4], b["prompt_ids"][4:])
    assert torch.equal(merged["prompt_ids"][4:, 3:], a["prompt_ids"][:4])
    assert (merged["prompt_ids"][4:, :3] == pad).all() and (merged["prompt_mask"][4:, :3] == 0).all()
    assert torch.equal(merged["completion_ids"][:4, :2], b["completion_ids"][4:])
    assert (merged["completion_mask"][:4, 2:] == 0).all()
    assert torch.equal(merged["completion_ids"][4:], a["completion_ids"][:4])
