"""The registered ``powernorm`` benchmark: seeded padded windows, weight decay on every
parameter, and a short run through the recipe runner whose numbers agree with each other and
with a brute-force evaluation of the trained model."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_powernorm.benchmark import (
    NORMS,
    VALID_FILES,
    _callbacks,
    corpus,
    measure,
    to_report,
    windows,
)

from tokensmith import Report


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 20), context=st.integers(8, 64), seed=st.integers(0, 2**16))
def test_windows_are_seeded_slices_of_random_length(n, context, seed):
    data = bytes(range(256)) * 3
    rows = windows(data, n, context, seed)
    assert rows == windows(data, n, context, seed) and len(rows) == n
    for row in rows:
        ids = row["input_ids"]
        assert context // 4 <= len(ids) <= context
        assert bytes(ids) in data


def test_weight_decay_reaches_every_parameter_group():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3))
    optimizer = torch.optim.AdamW([{"params": [model[0].weight], "weight_decay": 0.01},
                                   {"params": [model[0].bias, *model[1].parameters()], "weight_decay": 0.0}])
    decay, _ = _callbacks()
    decay.on_train_begin(type("Args", (), {"weight_decay": 0.01})(), None, None, optimizer=optimizer)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.01]


@pytest.fixture(scope="module")
def results():
    return measure(quick=True, steps=4, seeds=(0,))


def test_a_short_run_reports_every_norm_against_layernorm(results):
    report = to_report(results)
    assert isinstance(report, Report) and Report.from_json(report.to_json()) == report
    m = report.metrics
    finals = {r["norm"]: r["final_valid_bits_per_byte"] for r in results["runs"]}
    seconds = {r["norm"]: r["seconds"] for r in results["runs"]}
    for norm in NORMS:
        assert m[f"valid_bits_per_byte[{norm}]"] == finals[norm]
        assert m[f"valid_ratio_to_layernorm[{norm}]"] == pytest.approx(finals[norm] / finals["layernorm"])
        time_ratio = seconds[norm] / seconds["layernorm"]
        assert m[f"train_time_ratio_to_layernorm[{norm}]"] == pytest.approx(time_ratio)
    summary, every, curves = report.tables
    assert [r[0] for r in summary.rows] == list(NORMS) and [r[5] for r in every.rows] == [0, 7, 7]
    for run in results["runs"]:
        assert [s for s, _ in run["train_bits_per_byte"]] == [1, 2, 3, 4]
        assert all(math.isfinite(v) for _, v in run["train_bits_per_byte"])
        assert run["valid"][-1] == (4, run["final_valid_bits_per_byte"])
    assert m["steps"] == 4 and report.provenance.extra["seeds"] == [0]


def test_the_validation_is_the_token_mean_over_every_window(results):
    """The runner's evaluation (one right-padded batch, eval mode) equals bits/byte summed
    window by window without any padding: running statistics, and pads measured by nothing."""
    valid = windows(corpus(VALID_FILES), 128, results["setup"]["context"], seed=7)
    for run in results["runs"]:
        model = run["model"].eval()
        total = count = 0.0
        with torch.no_grad():
            for row in valid:
                ids = torch.tensor([row["input_ids"]])
                logits = model(input_ids=ids).logits[0, :-1]
                total += float(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
                count += ids.shape[1] - 1
        assert total / count / math.log(2) == pytest.approx(run["final_valid_bits_per_byte"], rel=1e-5)


def test_the_benchmark_is_registered_with_its_parameters(installed_registry):
    record = installed_registry.get("benchmark", "powernorm")
    assert record.distribution == "tokensmith-powernorm"
    assert {p.name for p in installed_registry.parameters(record).parameters} == {"steps", "seeds", "threads"}
