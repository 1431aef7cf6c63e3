"""The registered ``sstoken`` benchmark: the example selection (quotas, the dataset's split, the
length filter), the random control's count, the held-out metrics against a brute force, and a
short run of two arms through the recipe runner on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_sstoken.benchmark import (
    RandomRatio,
    SSTokenBenchmark,
    as_sft,
    measure,
    response_metrics,
    select_examples,
    short_prompt,
    to_report,
)

import tokensmith
from tokensmith import IGNORE_INDEX, Report
from tokensmith.testing import tiny_llama

TASKS = ("task_a", "task_b")


def _records(n=200, long_every=0):
    for i in range(n):
        text = "x" * 400 if long_every and i % long_every == 0 else f"{i} plus {i}?"
        yield f"k{i}", {"task": TASKS[i % 3] if i % 3 < 2 else "other",
                        "instruction": "Definition: add. Prompt: Add the numbers.", "input": text,
                        "output": f"{2 * i}."}


def test_the_selection_keeps_quotas_splits_and_lengths():
    chosen = select_examples(_records(long_every=7), tasks=TASKS, n_train=10, n_eval=4,
                             fits=lambda pair: len(pair["prompt"]) < 100, eval_fraction=0.3, seed=0)
    assert len(chosen["train"]) == 10 and len(chosen["eval"]) == 4 and chosen["too_long"] > 0
    assert all("x" * 50 not in p["prompt"] for p in chosen["train"] + chosen["eval"])
    assert not {p["prompt"] for p in chosen["train"]} & {p["prompt"] for p in chosen["eval"]}
    split = {as_sft(ex)["prompt"]: tokensmith.split_of(key, eval_fraction=0.3, seed=0)
             for key, ex in _records()}
    assert {split[p["prompt"]] for p in chosen["eval"]} == {"eval"}
    assert short_prompt("Definition: add. Prompt: Add the numbers.") == "Add the numbers."
    assert short_prompt("no marker here") == "no marker here"
    with pytest.raises(tokensmith.DataUnavailableError, match="fit"):
        select_examples(_records(20), tasks=TASKS, n_train=50, n_eval=4, fits=lambda p: True,
                        eval_fraction=0.3, seed=0)


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(0, 9), min_size=1, max_size=5), ratio=st.floats(0.05, 1.0),
       seed=st.integers(0, 1000))
def test_random_control_keeps_ceil_rho_r_response_tokens_per_sample(lengths, ratio, seed):
    width = 12
    labels = torch.full((len(lengths), width), IGNORE_INDEX)
    for r, n in enumerate(lengths):
        labels[r, width - n:] = 7
    kept = RandomRatio(ratio=ratio, seed=seed)({"labels": labels}, None)
    assert kept.sum(1).tolist() == [math.ceil(ratio * n - 1e-9) for n in lengths]
    assert not (kept & (labels == IGNORE_INDEX)).any()


def test_response_metrics_are_the_brute_force_ones(tiny_tokenizer):
    model, _ = tiny_llama(tiny_tokenizer, hidden_size=16, layers=1)
    rows = [{"input_ids": [1, 5, 6, 7, 8], "labels": [IGNORE_INDEX, IGNORE_INDEX, 6, 7, 8],
             "response_mask": [0, 0, 1, 1, 1]},
            {"input_ids": [1, 9, 4], "labels": [IGNORE_INDEX, IGNORE_INDEX, 4], "response_mask": [0, 0, 1]}]
    got = response_metrics(model, rows, pad_id=0)
    nll, right, exact = [], [], 0
    with torch.no_grad():
        for row in rows:
            logits = model(input_ids=torch.tensor([row["input_ids"]])).logits[0]
            ok = True
            for t, label in enumerate(row["labels"]):
                if label == IGNORE_INDEX:
                    continue
                nll.append(float(torch.nn.functional.cross_entropy(logits[t - 1], torch.tensor(label))))
                right.append(int(logits[t - 1].argmax()) == label)
                ok &= right[-1]
            exact += ok
    assert got["loss"] == pytest.approx(sum(nll) / len(nll), rel=1e-5)
    assert got["accuracy"] == pytest.approx(sum(right) / len(right))
    assert got["exact"] == pytest.approx(exact / len(rows))


def test_two_arms_through_the_runner_report_what_they_measured(plugin_registry):
    records = ((key, {**ex, "task": TASKS[i % 2]}) for i, (key, ex) in enumerate(_records(80)))
    results = measure(model_source={"source": "tiny-llama", "hidden_size": 16, "layers": 1},
                      arms=("full", "sstoken"), steps=2, eval_examples=3, batch_size=2, max_length=96,
                      lr=1e-3,
                      ratio=0.5, gamma=0.5, ema_decay=0.9, seed=0, tasks=TASKS, registry=plugin_registry,
                      runtime=tokensmith.Runtime(device="cpu", dtype="float32", seed=0, threads=1),
                      examples=records)
    report = to_report(results)
    assert isinstance(report, Report) and Report.from_json(report.to_json()) == report
    runs = {r["arm"]: r for r in results["runs"]}
    assert [s for s, _ in runs["sstoken"]["losses"]] == [1, 2]
    m = report.metrics
    gain = runs["sstoken"]["accuracy"] - runs["full"]["accuracy"]
    assert m["accuracy_minus_full[sstoken]"] == pytest.approx(gain)
    assert 0.5 <= results["kept_share"] <= 1 and runs["full"]["kept_share"] == 1
    # the runs really trained: the weights left the base, so the held-out loss moved
    assert runs["full"]["loss"] != pytest.approx(m["base_loss"], rel=1e-6)


def test_registered_with_its_parameters_and_checked(plugin_registry):
    record = plugin_registry.get("benchmark", "sstoken")
    names = {p.name for p in plugin_registry.parameters(record).parameters}
    assert {"model", "arms", "steps", "sample", "ratio", "gamma", "tasks"} <= names
    control = plugin_registry.build("objective", {"type": "sstoken-random", "ratio": 0.3})
    assert isinstance(control, RandomRatio) and control.ratio == 0.3

    with pytest.raises(tokensmith.ConfigError, match="arms"):
        SSTokenBenchmark(arms=("full", "nope"))
