"""The registered ``ln-free`` benchmark: the frozen prefix stands in for the bottom of the model
exactly, and a quick run on a tiny Llama reports numbers that agree with each other."""

from __future__ import annotations

import copy

import pytest
import torch
from tokensmith_ln_free.benchmark import FrozenPrefix, _top_only

from tokensmith import InputError, Report


def test_the_frozen_prefix_gives_the_whole_model_s_logits(tiny_llama, tiny_tokenizer):
    model, _ = tiny_llama
    texts = ("The quick brown fox jumps over", "def f(x): return x")
    rows = [list(tiny_tokenizer.encode(t).ids)[:12] for t in texts]
    rows = [r[:min(map(len, rows))] for r in rows]
    with torch.no_grad():
        whole = model(input_ids=torch.tensor(rows)).logits
    prefix = FrozenPrefix(model.get_input_embeddings().num_embeddings)
    prefix.compute(model, rows, keep=1, batch=1)
    top = _top_only(copy.deepcopy(model), list(model.model.layers)[-1:], prefix)
    assert len(top.model.layers) == 1
    with torch.no_grad():
        assert torch.allclose(top(input_ids=torch.tensor(rows)).logits, whole, atol=1e-5)
        with pytest.raises(InputError, match="not computed"):
            top(input_ids=torch.tensor([rows[0][::-1]]))


@pytest.fixture(scope="module")
def report():
    from tokensmith import Registry

    benchmark = Registry.from_environment().build("benchmark", {"type": "ln-free", "model": "tiny-llama"})
    return benchmark.run(quick=True)


def test_the_benchmark_is_registered_with_its_parameters(installed_registry):
    record = installed_registry.get("benchmark", "ln-free")
    assert record.distribution == "tokensmith-ln-free"
    assert {p.name for p in installed_registry.parameters(record).parameters} == {"model", "threads"}


def test_a_quick_run_reports_ln_free_against_vanilla(report):
    assert isinstance(report, Report) and report.name == "ln-free"
    assert Report.from_json(report.to_json()) == report
    m = report.metrics
    gap = m["ln_free_finetune_loss"] - m["vanilla_finetune_loss"]
    assert m["gap_ln_free_vs_vanilla"] == pytest.approx(gap)
    assert m["ln_free_time_vs_vanilla"] == pytest.approx(m["ln_free_seconds"] / m["vanilla_seconds"])
    paper, events, dla = report.tables
    # quick: the top block's two norms and the final norm, then the EOT event (position 0 stays)
    assert [r[2] for r in events.rows] == ["mlp-input", "attention-input", "final", "special"]
    assert [r[0] for r in events.rows] == [5, 8, 11, 14]
    assert m["largest_event_spike"] == pytest.approx(max(r[6] for r in events.rows))
    assert m["norms_removed"] == 3 and paper.rows[-1][1] == m["gap_ln_free_vs_vanilla"]
    # frozen norms are linear maps: direct logit attribution is exact; a live final norm's is not
    assert m["ln_free_dla_ablation_error"] < 1e-4 and m["ln_free_dla_sum_error"] < 1e-4
    assert m["vanilla_dla_ablation_error"] > 100 * m["ln_free_dla_ablation_error"]
    assert {s.group for s in report.series} == {"eval loss", "train loss", "direct logit attribution"}
    assert report.provenance.model == "tiny-llama" and report.provenance.extra["quick"] is True
