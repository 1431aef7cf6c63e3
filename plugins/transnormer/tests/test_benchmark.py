"""The registered ``transnormer`` benchmark on small sizes: growth exponents of exact power
laws, the attention forms measured up to their limits, and the two language models trained
through the recipe runner on the same windows, with a report whose numbers agree."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_transnormer.benchmark import (
    attention_scaling,
    growth_exponent,
    norm_speed,
    perplexity,
    stdlib_corpus,
    to_report,
    windows,
)

from tokensmith import Report


@settings(max_examples=40, deadline=None)
@given(power=st.floats(0.0, 3.0), scale=st.floats(1e-6, 1e3), points=st.integers(2, 8))
def test_the_growth_exponent_of_a_power_law_is_its_power(power, scale, points):
    lengths = [2 ** (6 + i) for i in range(points)]
    assert growth_exponent(lengths, [scale * n ** power for n in lengths]) == pytest.approx(power, abs=1e-9)


def test_windows_are_seeded_and_one_token_longer_than_the_context():
    import torch

    ids = torch.arange(1000)
    rows = windows(ids, 16, 5, seed=3)
    assert rows == windows(ids, 16, 5, seed=3) and len(rows) == 5
    for row in rows:
        first = row["input_ids"][0]
        assert row["input_ids"] == list(range(first, first + 17))


@pytest.fixture(scope="module")
def results():
    train, held = stdlib_corpus(40_000, 8_000)
    return {"quick": True, "threads": 1, "width": 256, "heads": 4,
            "attention": attention_scaling((64, 128, 256), {"softmax (materialised)": 128}, budget_s=0.2),
            "norms": norm_speed((2, 16, 32), repeats=2),
            "perplexity": perplexity(train, held, steps=3, seq=32, batch=4, llama_lrs=(3e-3, 1e-3),
                                     vocab=300, width=32, layers=1, decode_tokens=6)}


def test_each_form_is_measured_up_to_its_limit(results):
    att = results["attention"]
    assert att["softmax (materialised)"]["lengths"] == [64, 128]
    assert att["softmax (fused SDPA)"]["lengths"] == [64, 128, 256] == att["lightning (B=256)"]["lengths"]
    assert all(s > 0 and b > 0 for row in att.values() for s, b in zip(row["seconds"], row["peak_bytes"]))


def test_both_models_train_through_the_runner_on_the_same_budget(results):
    ppl = results["perplexity"]
    tnl, llama = ppl["transnormer"], ppl["llama"]
    assert abs(llama["parameters"] - tnl["parameters"]) <= 0.001 * tnl["parameters"]
    for record in (tnl, llama):
        assert [s for s, _ in record["train_loss"]] == [1, 2, 3]
        assert all(math.isfinite(v) for _, v in record["train_loss"])
        # bits per byte and perplexity are the same held-out NLL
        per_token = math.log(record["held_out_ppl"])
        bpb = per_token / math.log(2) * ppl["held_out_tokens"] / ppl["held_out_bytes"]
        assert record["held_out_bits_per_byte"] == pytest.approx(bpb, rel=1e-9)
    assert sorted(ppl["llama_lr_sweep"]) == [1e-3, 3e-3]
    assert llama["held_out_ppl"] == min(ppl["llama_lr_sweep"].values())
    decoding = ppl["decoding"]
    assert decoding["state_sizes_seen"] == [decoding["state_bytes"]]
    assert decoding["max_abs_logprob_diff_recurrent_vs_blockwise"] < 1e-4


def test_the_report_agrees_with_the_measurements(results):
    report = to_report(results)
    assert isinstance(report, Report) and report.name == "transnormer"
    assert Report.from_json(report.to_json()) == report
    m, ppl = report.metrics, results["perplexity"]
    assert m["ppl_ratio_transnormer_over_llama"] == pytest.approx(m["ppl_transnormer"] / m["ppl_llama"])
    assert m["lightning_time_exponent"] == results["attention"]["lightning (B=256)"]["time_exponent"]
    seconds = results["norms"]["seconds_fwd_bwd"]
    assert m["srmsnorm_speedup_vs_rmsnorm"] == pytest.approx(seconds["RMSNorm (gain)"] / seconds["SRMSNorm"])
    assert m["step_time_ratio_transnormer_over_llama"] == pytest.approx(
        ppl["transnormer"]["seconds_per_step"] / ppl["llama"]["seconds_per_step"])
    groups = {"attention time", "attention memory", "norms", "language models"}
    assert {s.group for s in report.series} == groups


def test_the_benchmark_is_registered_with_its_parameters(installed_registry):
    record = installed_registry.get("benchmark", "transnormer")
    assert record.distribution == "tokensmith-transnormer"
    assert {p.name for p in installed_registry.parameters(record).parameters} == {"steps", "threads"}
