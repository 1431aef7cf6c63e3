"""Every bad value is a typed error at validation (issue 8, item 11), and arbitrary TOML
values through the pipeline and the CLI give a correct result or a TokensmithError —
never another exception, a crash or a silent change."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokensmith import ConfigError, InputError, PipelineSpec, TokensmithError
from tokensmith.cli import main


@pytest.mark.parametrize("seed", ["1", 1.5, True, [1], 2**64, -1, None])
def test_bad_runtime_seeds_are_config_errors(make_registry, seed):
    problems = make_registry().validate(PipelineSpec(model="tiny-llama",
                                                     runtime={"device": "cpu", "seed": seed}))
    assert any(isinstance(p, ConfigError) and "seed must be an int" in str(p) for p in problems), problems


@pytest.mark.parametrize("threads", [100000, -1, 0, 1.5, "4", True])
def test_bad_thread_counts_are_config_errors(make_registry, threads):
    problems = make_registry().validate(PipelineSpec(model="tiny-llama",
                                                     runtime={"device": "cpu", "threads": threads}))
    assert any(isinstance(p, ConfigError) and "threads must be an int" in str(p) for p in problems)


@pytest.mark.parametrize("seed", ["1", 1.5, True, [1], 2**64, -1])
def test_bad_generate_seeds_are_input_errors(tiny_lm, seed):
    pytest.importorskip("tokensmith_baselines")
    from tokensmith_baselines import GreedyDecoder

    with pytest.raises(InputError, match="seed"):
        GreedyDecoder().generate(tiny_lm, "a", max_new_tokens=1, seed=seed)


def test_generate_table_keys_and_values_are_checked(make_registry):
    spec = PipelineSpec(model="tiny-llama", generate={"max_tokens": 3, "max_new_tokens": "five"},
                        runtime={"device": "cpu"})
    text = "\n".join(map(str, make_registry().validate(spec)))
    assert "unknown [generate] key 'max_tokens'" in text and "max_new_tokens must be an int >= 0" in text


def test_a_single_stage_is_not_split_into_letters():
    assert [s.type for s in PipelineSpec(model="x", stages="nfkc").stages] == ["nfkc"]
    spec = PipelineSpec.from_config({"model": "x", "tokenizer": {"stages": "nfkc"}})
    assert [s.type for s in spec.stages] == ["nfkc"]


def test_an_unavailable_device_fails_validation(make_registry):
    import torch

    devices = ["cuda:7"] + ([] if torch.backends.mps.is_available() else ["mps"])
    if not torch.cuda.is_available():
        devices.append("cuda")
    for device in devices:
        problems = make_registry().validate(PipelineSpec(model="tiny-llama", runtime={"device": device}))
        assert any("not available" in str(p) or "CUDA device" in str(p) for p in problems), device


@pytest.mark.parametrize("content", [None, b"\x00\x01\xff\xfe binary", "[model]\nsource = \"caf\xe9\"\n"])
def test_run_on_a_directory_binary_or_latin1_file_is_one_line(capsys, tmp_path, content):
    path = tmp_path / "pipeline.toml"
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("latin-1"))
    code = main(["run", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") <= 3 and "Traceback" not in err, err


# arbitrary TOML values --------------------------------------------------------------------
scalars = st.one_of(st.integers(-3, 2**64), st.booleans(), st.text(max_size=6),
                    st.floats(allow_nan=True, allow_infinity=True), st.just("nfkc"), st.just("greedy"))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.text(max_size=5), inner,
                                                                      max_size=3)), max_leaves=6)
KEYS = {"runtime": ["device", "dtype", "seed", "threads", "devise"],
        "model": ["source", "layers", "tokenizer", "progress", "seed", "bogus"],
        "decoder": ["type", "temperature", "top_k", "top_p", "token_healing", "heal_tokens"],
        "constraint": ["type", "all", "any", "pattern", "limit"],
        "generate": ["prompt", "max_new_tokens", "max_tokens"],
        "tokenizer": ["type", "stages"], "normalization": ["type"], "embedding": ["type"]}
SOURCES = st.sampled_from(["tiny-llama", "tiny-gpt2", "minilm", "smollm2", "nowhere", ""])
TYPES = st.sampled_from(["greedy", "sample", "identity", "model", "nfkc", "regex", "nope"])


@st.composite
def pipeline_tables(draw):
    config = {}
    for table, keys in KEYS.items():
        if table != "model" and not draw(st.booleans()):
            continue
        chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=3))
        body = {k: draw(values) for k in chosen}
        if table == "model":
            body["source"] = draw(st.one_of(SOURCES, values))
        elif "type" in keys and draw(st.booleans()):
            body["type"] = draw(st.one_of(TYPES, values))
        config[table] = body
    if draw(st.booleans()):
        config[draw(st.sampled_from(["decodr", "runtime"]))] = draw(values)
    return config


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(config=pipeline_tables())
def test_arbitrary_tables_validate_to_problems_or_nothing(installed_registry, config):
    try:
        spec = PipelineSpec.from_config(config)
        problems = installed_registry.validate(spec)
    except TokensmithError:
        return
    assert all(isinstance(p, TokensmithError) for p in problems)
    for p in problems:
        str(p)  # renders


def _has_nan(value) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    return False


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(config=pipeline_tables())
def test_arbitrary_toml_through_the_cli_is_a_result_or_one_line(capsys, tmp_path_factory, config):
    if isinstance(config.get("model"), dict) and config["model"].get("source") == "smollm2":
        config["model"]["source"] = "tiny-gpt2"  # keep each example fast
    try:
        text = tomli_w.dumps(config)
    except (TypeError, ValueError):
        return  # not representable in TOML
    path = Path(tmp_path_factory.mktemp("toml")) / "p.toml"
    path.write_text(text)
    code = main(["run", str(path), "--max-new-tokens", "2"])
    out = capsys.readouterr()
    assert code in (0, 2), (config, out.err)
    assert "Traceback" not in out.err and "internal error" not in out.err, out.err


def test_cli_with_a_non_utf8_argument_is_typed(tmp_path):
    """`tokensmith generate $'caf\\xe9'`: the argument arrives with a lone surrogate."""
    pytest.importorskip("tokensmith_baselines")
    result = subprocess.run([sys.executable, "-m", "tokensmith.cli", "generate", b"caf\xe9", "--model",
                             "tiny-llama", "--device", "cpu", "--max-new-tokens", "1"],
                            capture_output=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert b"Traceback" not in result.stderr and b"surrogate" in result.stderr.lower()


def test_deeply_nested_toml_is_a_config_error(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply|invalid TOML"):
        PipelineSpec.from_toml(path)
