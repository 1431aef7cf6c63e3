"""Registration: records only, no torch at import; the components are discoverable; the demo runs."""

from __future__ import annotations

import io
import subprocess
import sys
import types


def test_plugin_import_does_not_import_torch(tmp_path):
    code = "import sys, tokensmith_transnormer.plugin; print('torch' in sys.modules)"
    # cwd: outside the repository, whose source folder tokensmith/ would shadow the installed package
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path)
    assert out.stdout.strip() == "False"


def test_components_are_installed(installed_registry):
    names = {(c.kind, c.name): c for c in installed_registry.components()}
    for key in (("normalization", "srmsnorm"), ("architecture", "transnormer-lm"), ("demo", "transnormer")):
        assert key in names and names[key].distribution == "tokensmith-transnormer"
        assert installed_registry.build(*key).name == key[1]  # every parameter has a default


def test_demo_runs_and_reports_constant_state(tiny_llama):
    from tokensmith_transnormer.demo import LENGTHS, TransNormerDemo

    model, tok = tiny_llama
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = io.StringIO()
    report = TransNormerDemo().run(types.SimpleNamespace(model=model, tokenizer=tok, lm=None), out)
    results = report.metrics
    assert results["max_rel_diff_blockwise_vs_parallel"] < 1e-10
    assert results["max_rel_diff_recurrent_vs_parallel"] < 1e-10
    assert len({results[f"state_bytes_{n}"] for n in LENGTHS}) == 1
    kv = [results[f"pipeline_kv_cache_bytes_{n}"] for n in LENGTHS]
    assert kv == sorted(kv) and kv[0] < kv[-1]
    assert results["norm_layers_srmsnorm_would_replace"] == 5
    assert all(v.equal(model.state_dict()[k]) for k, v in before.items())
    assert "srmsnorm" in out.getvalue() and "\x1b" not in out.getvalue()
    memory = report.tables[0]
    assert [row[0] for row in memory.rows] == list(LENGTHS)
    assert [row[3] for row in memory.rows] == kv and len({row[2] for row in memory.rows}) == 1
    assert {s.group for s in report.series} == {"decoding memory", "attention time"}
