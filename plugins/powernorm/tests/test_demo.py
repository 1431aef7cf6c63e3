"""The demo reports the surgery on the pipeline model's structure and leaves the model alone."""

import io
import json
import types

import pytest
from tokensmith_powernorm.demo import PowerNormDemo

from tokensmith import find_norm_layers


def _run(model, tok, env_path, monkeypatch):
    monkeypatch.setenv("TOKENSMITH_POWERNORM_RESULTS", str(env_path))
    out = io.StringIO()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    result = PowerNormDemo().run(types.SimpleNamespace(model=model, tokenizer=tok, lm=None), out)
    assert all((p == before[name]).all() for name, p in model.named_parameters())
    return result, out.getvalue()


def test_demo_on_tiny_llama_with_bench_results(tiny_llama, tmp_path, monkeypatch):
    model, tok = tiny_llama
    results = tmp_path / "powernorm.json"
    results.write_text(json.dumps({"setup": {"steps": 3, "seeds": [0]},
                                   "mean_final_valid_bits_per_byte": {"layernorm": 4.0, "powernorm": 3.0},
                                   "valid_ratio_to_layernorm": {"layernorm": 1.0, "powernorm": 0.75}}))
    result, text = _run(model, tok, results, monkeypatch)
    assert result["replaced_layers"] == result["original_norm_layers_kept"] == 5
    assert result["valid_bits_per_byte"]["powernorm"] == 3.0 and "0.750 x LayerNorm" in text
    assert all(type(layer.module).__name__ == "LlamaRMSNorm" for layer in find_norm_layers(model)[0])


@pytest.mark.smollm2
def test_demo_on_smollm2_counts_every_norm_layer(smollm2, tmp_path, monkeypatch):
    model, tok = smollm2
    result, text = _run(model, tok, tmp_path / "absent.json", monkeypatch)
    assert result == {"replaced_layers": 61, "original_norm_layers_kept": 61}
    assert "bench/run.py --only powernorm" in text
