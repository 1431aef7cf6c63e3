"""The TRL adapters on a tiny Llama (the `trl` tox env: core + baselines + tokensmith[trl]):
ObjectiveSFTTrainer's loss and metrics agree with SFTTrainer's own, it trains on composed
objectives without TRL's deprecated compute_loss_func; GRPOTrainer trains on tokensmith rewards
(DAPO loss, epsilon_high, batch-scaled rewards); group-normalized agrees with TRL's advantages."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

trl = pytest.importorskip("trl", reason="the TRL adapters need TRL: pip install 'tokensmith[trl]'")
datasets = pytest.importorskip("datasets", reason="TRL's trainers take a datasets.Dataset")

import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import tokensmith  # noqa: E402
from tokensmith import ComponentError, ConfigError, InputError, Reward  # noqa: E402
from tokensmith.testing import tiny_llama  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


@pytest.fixture
def hf_tokenizer(tiny_tokenizer):
    """The tiny tokenizer as a transformers tokenizer (a copy: transformers sets padding on it)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(tiny_tokenizer.backend.to_str())
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", padding_side="left")


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed(before, model):
    return any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def _sft_data():
    return datasets.Dataset.from_list([{"prompt": f"Question {i}: what is {i} + {i}?",
                                        "completion": f" It is {2 * i}."} for i in range(8)])


def _sft_args(tmp_path, **kw):
    return tokensmith.sft_config(str(tmp_path), use_cpu=True, max_steps=2, per_device_train_batch_size=4,
                                 learning_rate=1e-2, logging_steps=1, save_strategy="no", report_to="none",
                                 seed=0, disable_tqdm=True, max_length=64, **kw)


def test_configs_are_float32_on_cpu_unless_asked(tmp_path):
    assert tokensmith.sft_config(str(tmp_path), use_cpu=True).bf16 is False
    assert tokensmith.grpo_config(str(tmp_path), use_cpu=True).bf16 is False
    assert trl.SFTConfig(str(tmp_path), use_cpu=True).bf16 is True  # TRL's own default


def test_objective_sft_loss_and_metrics_agree_with_sft_trainers_own(tiny_tokenizer, hf_tokenizer, tmp_path):
    model, _ = tiny_llama(tiny_tokenizer)
    trainer = tokensmith.ObjectiveSFTTrainer(model, _sft_args(tmp_path), train_dataset=_sft_data(),
                                             processing_class=hf_tokenizer, objectives=["cross-entropy"])
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    model.train()
    assert (batch["labels"] == -100).any(), "completion_only_loss: the prompt labels are ignored"
    n = (batch["labels"][..., 1:] != -100).sum()
    ours = trainer.compute_loss(model, dict(batch), num_items_in_batch=n)
    ours_metrics = {k: trainer._metrics["train"][k][-1] for k in ("entropy", "mean_token_accuracy")}
    theirs = trl.SFTTrainer.compute_loss(trainer, model, dict(batch), num_items_in_batch=n)
    assert torch.allclose(ours, theirs, rtol=1e-5)
    for key, value in ours_metrics.items():
        assert value == pytest.approx(trainer._metrics["train"][key][-1], rel=1e-4, abs=1e-6), key


def test_objective_sft_trainer_trains_on_composed_objectives(tiny_tokenizer, hf_tokenizer, tmp_path):
    model, _ = tiny_llama(tiny_tokenizer)
    before = _params(model)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*compute_loss_func.*")
        trainer = tokensmith.ObjectiveSFTTrainer(
            model, _sft_args(tmp_path), train_dataset=_sft_data(), processing_class=hf_tokenizer,
            objectives=["cross-entropy", "response-only", {"type": "random-fraction", "fraction": 0.5}])
        trainer.train()
    assert trainer.objective.name == "cross-entropy * response-only * random-fraction"
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert len(logged) == 2 and all(torch.isfinite(torch.tensor(e["loss"])) for e in logged)
    assert all("mean_token_accuracy" in e and e["num_tokens"] > 0 for e in logged)
    assert _changed(before, model)


def test_objective_sft_trainer_refuses_trls_own_losses(tiny_tokenizer, hf_tokenizer, tmp_path):
    model, _ = tiny_llama(tiny_tokenizer)
    with pytest.raises(ConfigError, match="loss_type"):
        tokensmith.ObjectiveSFTTrainer(model, _sft_args(tmp_path, loss_type="dft"), train_dataset=_sft_data(),
                                       processing_class=hf_tokenizer, objectives=["cross-entropy"])
    with pytest.raises(ConfigError, match="both"):
        tokensmith.ObjectiveSFTTrainer(model, _sft_args(tmp_path), train_dataset=_sft_data(),
                                       processing_class=hf_tokenizer, objectives=["cross-entropy"],
                                       compute_loss_func=tokensmith.compute_loss_func("cross-entropy"))
    with pytest.raises(ConfigError, match="RL"):
        tokensmith.ObjectiveSFTTrainer(model, _sft_args(tmp_path), train_dataset=_sft_data(),
                                       processing_class=hf_tokenizer, objectives=["exact-match"])


class LetterShare(Reward):
    """The share of letters in a completion; records what it was called with."""

    name = "letter-share"

    def __init__(self):
        self.calls = []

    def __call__(self, prompts, completions, **info):
        prompts, completions = self.check_inputs(prompts, completions, info)
        self.calls.append((prompts, completions, dict(info)))
        return [sum(ch.isalpha() for ch in c) / max(1, len(c)) for c in completions]


def test_grpo_trains_on_tokensmith_rewards(tiny_tokenizer, hf_tokenizer, tmp_path):
    model, _ = tiny_llama(tiny_tokenizer)
    before = _params(model)
    letters = LetterShare()
    pairs = [("2 + 2 =", "4"), ("3 + 4 =", "7"), ("the cat", "1"), ("def f", "2")]
    data = datasets.Dataset.from_list([{"prompt": p, "answer": a} for p, a in pairs])
    args = tokensmith.grpo_config(str(tmp_path), use_cpu=True, max_steps=2, per_device_train_batch_size=4,
                                  num_generations=4, max_completion_length=8, loss_type="dapo",
                                  epsilon_high=0.28, scale_rewards="batch", use_vllm=False, report_to="none",
                                  logging_steps=1, save_strategy="no", learning_rate=1e-2, seed=0,
                                  disable_tqdm=True)
    trainer = trl.GRPOTrainer(model=model, reward_funcs=tokensmith.reward_funcs(letters, "exact-match"),
                              args=args, train_dataset=data, processing_class=hf_tokenizer)
    trainer.train()
    assert len(letters.calls) >= 2
    prompts, completions, info = letters.calls[0]
    assert len(prompts) == len(completions) == 4 and all(isinstance(c, str) for c in completions)
    assert set(info) == {"answer", "completion_ids"} and len(info["answer"]) == 4
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert logged and all(torch.isfinite(torch.tensor(e["loss"])) for e in logged)
    assert "rewards/letter-share/mean" in logged[0] and "rewards/exact-match/mean" in logged[0]
    assert _changed(before, model)


def test_reward_funcs_take_trls_call_in_both_formats():
    [exact] = tokensmith.reward_funcs("exact-match")
    assert exact.__name__ == "exact-match"
    columns = {"answer": ["4", "5"], "trainer_state": object(), "log_extra": print, "log_metric": print}
    assert exact(prompts=["2+2", "2+3"], completions=["so 4", "it is 6"], completion_ids=[[1], [2]],
                 **columns) == [1.0, 0.0]
    chat_prompts = [[{"role": "system", "content": "math"}, {"role": "user", "content": "2+2"}]] * 2
    chat_completions = [[{"role": "assistant", "content": "so 4"}],
                        [{"role": "assistant", "content": [{"type": "text", "text": "it is 5"}]}]]
    assert exact(prompts=chat_prompts, completions=chat_completions, completion_ids=[[1], [2]],
                 **columns) == [1.0, 1.0]
    with pytest.raises(InputError, match="chat messages"):
        exact(prompts=["a"], completions=[3], answer=["3"])
    with pytest.raises(ConfigError, match="not a reward"):
        tokensmith.reward_funcs("response-only")

    class Short(Reward):
        name = "short"

        def __call__(self, prompts, completions, **info):
            return [1.0]

    with pytest.raises(ComponentError, match="1 rewards for 2"):
        tokensmith.reward_funcs(Short())[0](["a", "b"], ["c", "d"])


def _trl_advantages(rewards, num_generations, scale):
    """The lines of GRPOTrainer._generate_and_score_completions (TRL 1.16) that turn summed
    rewards into advantages, with TRL's own nanstd."""
    from trl.trainer.utils import nanstd

    mean = torch.nanmean(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations, dim=0)
    if scale in ("group", "none"):
        std = nanstd(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations, dim=0)
    else:
        std = nanstd(rewards).expand_as(rewards)
    advantages = rewards - mean
    return advantages / (std + 1e-4) if scale != "none" else advantages


@settings(max_examples=60, deadline=None)
@given(groups=st.integers(1, 4), size=st.integers(2, 5), scale=st.sampled_from(["group", "batch", "none"]),
       data=st.data())
def test_group_normalized_is_trls_advantage(groups, size, scale, data):
    values = data.draw(st.lists(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(-5, 5)),
                                min_size=groups * size, max_size=groups * size))
    rewards = torch.tensor(values, dtype=torch.float32)
    advantage = tokensmith.default_registry().build("objective", {"type": "group-normalized", "scale": scale})
    ours = advantage(rewards, torch.arange(groups).repeat_interleave(size))
    assert torch.allclose(ours, _trl_advantages(rewards, size, scale), rtol=1e-4, atol=1e-4)


def test_the_docs_trl_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", (Path(__file__).resolve().parents[2] / "docs" /
                                                   "objectives.md").read_text(), re.S)
    [example] = [b for b in blocks if "import trl" in b]
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "docs/objectives.md[trl]", "exec"), {})
    assert "loss" in capsys.readouterr().out
