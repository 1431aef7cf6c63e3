"""A TransNormer LM as a pipeline's [model], decoded through the recurrent form; its
[model] parameters are described before it loads, so bad ones fail validation."""

import pytest

from tokensmith import ConfigError, LanguageModel, ModelSource, PipelineSpec, Registry, Runtime


def _registry():
    reg = Registry.from_environment()
    try:
        reg.get("decoder", "greedy")
    except ConfigError:
        pytest.skip("tokensmith-baselines (decoder 'greedy') is not installed")
    return reg


def test_transnormer_source_and_wrapper_build_a_pipeline():
    reg = _registry()
    spec = PipelineSpec(model={"source": "transnormer-lm", "width": 32, "layers": 1, "heads": 2},
                        decoder="greedy", runtime={"device": "cpu", "dtype": "float64", "seed": 1})
    pipe = reg.build_pipeline(spec)
    assert type(pipe.lm).__name__ == "TransNormerLanguageModel" and isinstance(pipe.lm, LanguageModel)
    assert pipe.lm.runtime is pipe.runtime and pipe.model.config.width == 32
    gen = pipe.generate("The capital", max_new_tokens=5)
    assert len(gen.ids) <= 5
    ids = list(pipe.lm.start_ids) + list(pipe.tokenizer.encode("The capital").ids)
    rows = pipe.lm.logprobs_batch([ids + list(gen.ids)])[0]
    for step, token in enumerate(gen.ids):
        assert int(rows[len(ids) - 1 + step].argmax()) == token


def test_sampling_without_a_seed_draws_from_the_runtime_generator():
    """seed=None: each call advances the pipeline runtime's generator (different samples);
    the same seed gives the same sample."""
    reg = _registry()
    spec = PipelineSpec(model={"source": "transnormer-lm", "width": 32, "layers": 1, "heads": 2},
                        decoder={"type": "sample", "temperature": 2.0},
                        runtime={"device": "cpu", "dtype": "float64", "seed": 1})
    pipe = reg.build_pipeline(spec)
    unseeded = {pipe.generate("The", max_new_tokens=8).ids for _ in range(4)}
    assert len(unseeded) > 1
    assert pipe.generate("The", max_new_tokens=8, seed=3).ids == pipe.generate("The", max_new_tokens=8,
                                                                               seed=3).ids


def test_describe_model_lists_the_parameters():
    info = Registry.from_environment().describe_model(ModelSource("transnormer-lm"))
    names = {p.name for p in info.parameters}
    assert {"tokenizer", "tokenizer_size", "vocab_size", "width", "heads", "lrpe_layers", "eps"} <= names
    assert info.provides == frozenset({"causal_lm", "byte_view"})


@pytest.mark.parametrize("params, name", [({"widht": 8}, "widht"), ({"width": "wide"}, "width"),
                                          ({"layers": 0}, "layers"), ({"tokenizer": "bpe"}, "tokenizer"),
                                          ({"lrpe": 1}, "lrpe")])
def test_bad_source_parameters_fail_validation(params, name):
    problems = Registry.from_environment().validate(
        PipelineSpec(model={"source": "transnormer-lm", **params}))
    assert len(problems) == 1 and isinstance(problems[0], ConfigError)
    assert name in str(problems[0]) and "transnormer-lm" in str(problems[0])


def test_fields_that_disagree_are_a_config_error_at_load():
    with pytest.raises(ConfigError, match="divisible") as info:
        Registry.from_environment().load_model(ModelSource("transnormer-lm", {"width": 10, "heads": 4}),
                                               Runtime(device="cpu"))
    assert "transnormer-lm" in str(info.value)
