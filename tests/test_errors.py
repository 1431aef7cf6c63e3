"""Bad input gets typed errors that name the component."""

import pytest

from tokensmith import (
    ContextLengthError,
    InputError,
    PipelineSpec,
    UnsupportedRuntimeError,
    ValidationError,
)


@pytest.fixture
def pipe(installed_registry):
    pytest.importorskip("tokensmith_baselines")
    return installed_registry.build_pipeline(PipelineSpec(model="tiny-llama", decoder="greedy",
                                                          runtime={"device": "cpu"}))


def test_non_str_prompt(pipe):
    with pytest.raises(InputError, match=r"\[pipeline\] expected text of type str, got bytes"):
        pipe.generate(b"hello")


def test_prompt_over_the_context(pipe):
    with pytest.raises(ContextLengthError, match=r"\[language model .*context length 256"):
        pipe.generate("the " * 300)


def test_unknown_device_and_dtype_in_a_spec(installed_registry):
    spec = PipelineSpec(model="tiny-llama", runtime={"device": "gpu0", "dtype": "fp8"})
    with pytest.raises(ValidationError) as info:
        installed_registry.build_pipeline(spec)
    assert any(isinstance(p, UnsupportedRuntimeError) and "unknown device 'gpu0'" in str(p)
               for p in info.value.problems)


def test_component_unsupported_on_the_configured_device(make_registry):
    from tokensmith import Component, hookimpl

    class CudaOnly:
        @hookimpl
        def tokensmith_register_normalizations(self):
            return [Component("fused-norm", lambda c, ctx: None, devices=("cuda",))]

    reg = make_registry(CudaOnly(), entry_points=True)
    problems = reg.validate(PipelineSpec(model="tiny-llama", normalization="fused-norm",
                                         runtime={"device": "cpu"}))
    assert any("[normalization 'fused-norm'" in str(p) and "does not support device 'cpu'" in str(p)
               for p in problems)
