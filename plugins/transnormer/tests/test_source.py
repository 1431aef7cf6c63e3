"""A TransNormer LM as a pipeline's [model], decoded through the recurrent form."""

import pytest

from tokensmith import PipelineSpec, Registry


def test_transnormer_source_and_wrapper_build_a_pipeline():
    pytest.importorskip("tokensmith_baselines")
    reg = Registry.from_environment()
    spec = PipelineSpec(model={"source": "transnormer-lm", "width": 32, "layers": 1, "heads": 2},
                        decoder="greedy", runtime={"device": "cpu", "dtype": "float64", "seed": 1})
    pipe = reg.build_pipeline(spec)
    assert type(pipe.lm).__name__ == "TransNormerLanguageModel"
    gen = pipe.generate("The capital", max_new_tokens=5)
    assert len(gen.ids) <= 5
    ids = list(pipe.lm.start_ids) + list(pipe.tokenizer.encode("The capital").ids)
    rows = pipe.lm.logprobs_batch([ids + list(gen.ids)])[0]
    for step, token in enumerate(gen.ids):
        assert int(rows[len(ids) - 1 + step].argmax()) == token


def test_bad_source_parameters_are_a_typed_error():
    from tokensmith import ModelLoadError, ModelSource, Runtime

    reg = Registry.from_environment()
    with pytest.raises(ModelLoadError, match="transnormer-lm"):
        reg.load_model(ModelSource("transnormer-lm", {"widht": 8}), Runtime(device="cpu"))
