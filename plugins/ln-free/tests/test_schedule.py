"""The removal schedule (the paper's order) and the fine-tuning recipe that applies it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_ln_free import export, fake_norms
from tokensmith_ln_free.finetune import FinetuneConfig, evaluate, finetune, learning_rate
from tokensmith_ln_free.schedule import FIRST_POSITION, SPECIAL_IDS, norm_role, removal_schedule

from tokensmith import ConfigError, find_norm_layers

LLAMA = [f"model.layers.{i}.{n}" for i in range(3) for n in ("input_layernorm", "post_attention_layernorm")]
LLAMA.append("model.norm")
GPT2 = [f"transformer.h.{i}.{n}" for i in range(3) for n in ("ln_1", "ln_2")] + ["transformer.ln_f"]


@pytest.mark.parametrize("paths", [LLAMA, GPT2])
def test_paper_order(paths):
    events = removal_schedule(reversed(paths), start=20, gap=2)
    roles = [e.role for e in events]
    assert roles == ["mlp-input"] * 3 + ["attention-input"] * 3 + ["final", "special", "special"]
    assert [e.target for e in events[:3]] == [p for p in paths if norm_role(p) == "mlp-input"]
    assert [e.target for e in events[-2:]] == [SPECIAL_IDS, FIRST_POSITION]


@settings(max_examples=30, deadline=None)
@given(start=st.integers(0, 50), gap=st.integers(1, 9), special=st.booleans())
def test_events_are_gap_apart_and_cover_every_norm(start, gap, special):
    events = removal_schedule(LLAMA, start=start, gap=gap, special_ids=special)
    assert [e.step for e in events] == [start + gap * i for i in range(len(events))]
    assert {e.target for e in events if e.role != "special"} == set(LLAMA)
    assert (SPECIAL_IDS in {e.target for e in events}) == special


def test_bad_schedule_parameters():
    with pytest.raises(ConfigError):
        removal_schedule(LLAMA, gap=0)


def test_learning_rate_warms_up_then_decays_to_min_lr():
    config = FinetuneConfig(steps=100, lr=1e-3, min_lr=1e-4, warmup=10)
    assert learning_rate(0, config) == pytest.approx(1e-4)
    assert learning_rate(9, config) == pytest.approx(1e-3)
    assert learning_rate(10, config) == pytest.approx(1e-3)
    assert learning_rate(100, config) == pytest.approx(1e-4)
    values = [learning_rate(s, config) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


@pytest.fixture
def batches(tiny_tokenizer):
    from tokensmith.testing import TINY_CORPUS

    ids = tiny_tokenizer.encode(TINY_CORPUS * 2).ids
    chunks = [torch.tensor(ids[i:i + 16]) for i in range(0, len(ids) - 16, 16)]
    return [torch.stack(chunks[i:i + 2]) for i in range(0, len(chunks) - 1, 2)]


def test_finetune_removes_every_norm_on_schedule(tiny_gpt2, batches, provider):
    model, _ = tiny_gpt2
    provider.replace(model)
    events = removal_schedule(fake_norms(model), start=2, gap=1)
    log = finetune(model, batches[:-2], FinetuneConfig(steps=len(events) + 4, warmup=2),
                   schedule=events, eval_batches=batches[-2:])
    assert log.events == list(events)
    assert all(norm.mode == "fake" for norm in fake_norms(model).values())
    labels = [e.label for e in log.evals]
    assert labels[0] == "start" and labels[-1] == "end"
    assert labels[1:-1] == [f"{w} {e.target}" for e in events for w in ("before", "after")]
    assert all(torch.isfinite(torch.tensor(log.train_loss)))
    export(model)
    assert find_norm_layers(model) == ([], [])
    assert evaluate(model, batches[-2:]) == pytest.approx(log.final_loss, abs=1e-4)


def test_ln_free_finetune_stays_close_to_the_vanilla_finetune(tiny_gpt2, batches, provider, make_provider):
    """The paper's claim at toy scale: a tiny GPT-2, first trained 200 steps with its norms, is
    fine-tuned 30 more steps with and without removing every norm on the schedule. Tolerance: the
    LN-free eval loss is at most 0.15 nats above the vanilla one (0.111 measured, one seed; the
    paper reports +0.014…+0.067 at GPT-2 scale), and below what freezing every norm without
    fine-tuning costs (0.191 measured)."""
    import copy

    model, _ = tiny_gpt2
    train, held_out = batches[:-2], batches[-2:]
    torch.manual_seed(0)
    finetune(model, train, FinetuneConfig(steps=200, lr=3e-3, min_lr=1e-3, warmup=5))
    untuned = copy.deepcopy(model)
    make_provider(mode="removed", special_first=False, special_eot=False).replace(untuned)
    final = {}
    for name in ("vanilla", "ln-free"):
        tuned = copy.deepcopy(model)
        provider.replace(tuned)
        events = removal_schedule(fake_norms(tuned), start=3, gap=2) if name == "ln-free" else ()
        torch.manual_seed(0)
        log = finetune(tuned, train, FinetuneConfig(steps=30, lr=1e-3, min_lr=5e-4, warmup=2),
                       schedule=events, eval_batches=held_out)
        final[name] = log.final_loss
    assert all(norm.mode == "fake" for norm in fake_norms(tuned).values())
    gap = final["ln-free"] - final["vanilla"]
    assert gap < 0.15
    assert gap < evaluate(untuned, held_out) - final["vanilla"]


def test_vanilla_finetune_trains_only_the_chosen_parameters(tiny_llama, batches):
    model, _ = tiny_llama
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    config = FinetuneConfig(steps=3, warmup=1, trainable=("model.layers.1.*",), eval_every=1)
    log = finetune(model, batches, config, eval_batches=batches[:1])
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("model.layers.1.") for n in changed)
    assert [e.label for e in log.evals] == ["start", "step", "step", "end"]
    assert all(p.requires_grad for p in model.parameters())


def test_events_after_the_last_step_are_an_error(tiny_llama, batches, provider):
    model, _ = tiny_llama
    provider.replace(model)
    with pytest.raises(ConfigError, match="after the last step"):
        finetune(model, batches, FinetuneConfig(steps=3), schedule=removal_schedule(fake_norms(model)))


def test_unknown_trainable_pattern_is_an_error(tiny_llama, batches):
    with pytest.raises(ConfigError, match="match no parameter"):
        finetune(tiny_llama[0], batches, FinetuneConfig(steps=1, trainable=("encoder.*",)))
