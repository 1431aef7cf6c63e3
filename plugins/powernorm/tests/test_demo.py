"""The demo reports the surgery on the pipeline model's structure and leaves the model alone."""

import io
import json
import types

import pytest
from tokensmith_powernorm.demo import PowerNormDemo

from tokensmith import Provenance, Report, find_norm_layers


def _run(model, tok, env_path, monkeypatch):
    monkeypatch.setenv("TOKENSMITH_POWERNORM_RESULTS", str(env_path))
    out = io.StringIO()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    report = PowerNormDemo().run(types.SimpleNamespace(model=model, tokenizer=tok, lm=None), out)
    assert all((p == before[name]).all() for name, p in model.named_parameters())
    assert "\x1b" not in out.getvalue()
    return report, out.getvalue()


def test_demo_on_tiny_llama_with_bench_results(tiny_llama, tmp_path, monkeypatch):
    model, tok = tiny_llama
    results = tmp_path / "powernorm.json"
    # the layout `tokensmith bench powernorm` writes: a Report
    results.write_text(Report("powernorm", metrics={
        "steps": 3, "valid_bits_per_byte[layernorm]": 4.0, "valid_ratio_to_layernorm[layernorm]": 1.0,
        "valid_bits_per_byte[powernorm]": 3.0, "valid_ratio_to_layernorm[powernorm]": 0.75},
        provenance=Provenance(extra={"seeds": [0]})).to_json())
    report, text = _run(model, tok, results, monkeypatch)
    assert report.metrics["replaced_layers"] == report.metrics["original_norm_layers_kept"] == 5
    assert report.metrics["valid_bits_per_byte[powernorm]"] == 3.0
    assert report.tables[1].rows == (("layernorm", 4.0, 1.0), ("powernorm", 3.0, 0.75))
    assert "0.75" in text and "x LayerNorm" in text
    assert all(type(layer.module).__name__ == "LlamaRMSNorm" for layer in find_norm_layers(model)[0])


def test_results_in_another_format_are_a_note_not_a_crash(tiny_llama, tmp_path, monkeypatch):
    model, tok = tiny_llama
    results = tmp_path / "powernorm.json"
    results.write_text(json.dumps({"setup": {"steps": 3}, "mean_final_valid_bits_per_byte": {}}))
    report, text = _run(model, tok, results, monkeypatch)
    assert len(report.tables) == 1 and "not shown:" in report.notes[0] and "not shown" in text
    results.write_text(Report("powernorm", metrics={"steps": 3}).to_json())
    report, text = _run(model, tok, results, monkeypatch)
    assert len(report.tables) == 1 and "not shown: KeyError" in report.notes[0]


@pytest.mark.smollm2
def test_demo_on_smollm2_counts_every_norm_layer(smollm2, tmp_path, monkeypatch):
    model, tok = smollm2
    report, text = _run(model, tok, tmp_path / "absent.json", monkeypatch)
    assert report.metrics == {"replaced_layers": 61, "original_norm_layers_kept": 61}
    assert "tokensmith bench powernorm" in text
