import json

import pytest

from tokensmith.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_plugins_json_lists_plugins_with_versions_hooks_components(capsys):
    code, out, _ = run(capsys, "plugins", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["tokensmith.adapters"]["hooks"] == ["tokensmith_describe_model", "tokensmith_load_model",
                                                    "tokensmith_wrap_language_model"]
    for row in rows.values():
        assert row["version"] and row["distribution"] and isinstance(row["components"], list)


@pytest.mark.needs_baselines
def test_plugins_json_includes_baselines(capsys):
    rows = {row["name"]: row for row in json.loads(run(capsys, "plugins", "--json")[1])}
    base = rows["baselines"]
    assert base["distribution"] == "tokensmith-baselines" and base["version"] == "0.1.0"
    assert any(c["kind"] == "decoder" and c["name"] == "greedy" for c in base["components"])
    assert "tokensmith_register_decoders" in base["hooks"]


@pytest.mark.needs_baselines
def test_components_of_a_kind(capsys):
    code, out, _ = run(capsys, "components", "decoder", "--json")
    rows = json.loads(out)
    assert code == 0 and {c["kind"] for c in rows} == {"decoder"}
    sample = next(c for c in rows if c["name"] == "sample")
    params = {p["name"]: p for p in sample["parameters"]}
    assert params["temperature"] == {"name": "temperature", "type": "float", "required": False,
                                     "default": 1.0}
    assert sample["accepts_constraint"] is False and sample["requires"] == []
    code, out, _ = run(capsys, "components", "decoder")
    assert "temperature: float = 1.0" in out


@pytest.mark.needs_baselines
def test_run_a_toml_pipeline(capsys, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[runtime]\ndevice = "cpu"\n[model]\nsource = "tiny-llama"\n'
                    '[normalization]\ntype = "identity"\n[decoder]\ntype = "sample"\ntemperature = 0.7\n'
                    '[generate]\nprompt = "The capital"\nmax_new_tokens = 3\n')
    code, out, _ = run(capsys, "run", str(path))
    assert code == 0 and "completion:" in out and "normalization 'identity': 0 change(s)" in out


@pytest.mark.needs_baselines
def test_generate(capsys):
    code, out, _ = run(capsys, "generate", "Hello", "--model", "tiny-gpt2", "--device", "cpu",
                       "--max-new-tokens", "3", "--param", "token_healing=true")
    assert code == 0 and "prompt:     'Hello'" in out and "healed_bytes=" in out


def test_errors_exit_2_with_a_message(capsys, tmp_path):
    code, _, err = run(capsys, "run", str(tmp_path / "missing.toml"))
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, "generate", "x", "--model", "tiny-llama", "--device", "tpu")
    assert code == 2 and "unknown device 'tpu'" in err
    code, _, err = run(capsys, "generate", "x", "--model", "tiny-llama", "--decoder", "gredy",
                       "--device", "cpu")
    assert code == 2 and "decoder 'gredy'" in err


@pytest.mark.needs_baselines
def test_unknown_model_source(capsys):
    code, _, err = run(capsys, "generate", "x", "--model", "no-such-model", "--device", "cpu")
    assert code == 2 and "no plugin can load model source 'no-such-model'" in err
