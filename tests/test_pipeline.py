import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokensmith import (
    Component,
    ConfigError,
    Decoder,
    FunctionConstraint,
    IncompatibleComponentsError,
    PipelineSpec,
    ValidationError,
    hookimpl,
)

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
values = st.one_of(st.integers(-5, 5), st.booleans(), st.text(max_size=8),
                   st.floats(allow_nan=False, allow_infinity=False))
params = st.dictionaries(names.filter(lambda n: n != "type"), values, max_size=3)
refs = st.builds(lambda t, p: {"type": t, **p}, names, params)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(model=names, tok=st.one_of(st.none(), refs), dec=st.one_of(st.none(), refs),
       norm=st.one_of(st.none(), refs), stages=st.lists(refs, max_size=2),
       constraint=st.one_of(st.none(), refs), gen=st.dictionaries(names, values, max_size=2))
def test_to_config_round_trips(model, tok, dec, norm, stages, constraint, gen):
    spec = PipelineSpec(model=model, tokenizer=tok, decoder=dec, normalization=norm,
                        stages=stages, constraint=constraint, generate=gen)
    assert PipelineSpec.from_config(spec.to_config()) == spec


def test_toml_round_trip(tmp_path):
    spec = PipelineSpec(model={"source": "tiny-llama", "seed": 3},
                        decoder={"type": "sample", "temperature": 0.5}, stages=["nfkc"])
    path = tmp_path / "p.toml"
    path.write_text(spec.to_toml())
    assert PipelineSpec.from_toml(path) == spec
    assert attrs.evolve(spec, decoder="greedy").decoder.type == "greedy"


def test_bad_toml_and_missing_model(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[decoder\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        PipelineSpec.from_toml(path)
    with pytest.raises(ConfigError, match="no \\[model\\]"):
        PipelineSpec.from_config({"decoder": {"type": "greedy"}})
    with pytest.raises(ConfigError, match="unknown pipeline tables"):
        PipelineSpec.from_config({"model": "x", "decodr": {"type": "greedy"}})
    with pytest.raises(ConfigError, match="no 'type' key"):
        PipelineSpec.from_config({"model": "x", "decoder": {"temperature": 1}})


@attrs.define
class Counting(Decoder):
    name = "counting"
    steps: int = attrs.field(default=1, validator=attrs.validators.gt(0))

    def generate(self, lm, prompt, *, max_new_tokens=32, constraint=None, seed=None):
        request = self.begin(lm, prompt, max_new_tokens=max_new_tokens, constraint=constraint, seed=seed)
        return request.generation([], b"", finish_reason="length")


class Parts:
    @hookimpl
    def tokensmith_register_decoders(self):
        return [Component("counting", Counting), Component("gpu-only", Counting, devices=("cuda",))]


@pytest.mark.needs_baselines
def test_validation_reports_every_problem_at_once(make_registry):
    reg = make_registry(Parts(), entry_points=True)
    spec = PipelineSpec(model="tiny-llama", tokenizer="modle", decoder={"type": "counting", "step": 2},
                        normalization="identty", runtime={"device": "cpu", "dtype": "fp32"})
    problems = reg.validate(spec)
    text = "\n".join(map(str, problems))
    assert len(problems) == 3, text
    assert "tokenizer 'modle'" in text and "did you mean 'model'" in text
    assert "normalization 'identty'" in text
    assert "unknown parameter 'step' (did you mean 'steps'?)" in text
    with pytest.raises(ValidationError) as info:
        reg.build_pipeline(spec)
    assert len(info.value.problems) == 3


def test_bad_parameter_value_and_unsupported_device(make_registry):
    reg = make_registry(Parts())
    spec = PipelineSpec(model="tiny-llama", decoder={"type": "counting", "steps": 0},
                        runtime={"device": "cpu"})
    assert any("steps" in str(p) for p in reg.validate(spec))
    spec = attrs.evolve(spec, decoder="gpu-only")
    assert any("does not support device 'cpu'" in str(p) for p in reg.validate(spec))


@pytest.mark.needs_baselines
def test_constraint_with_a_decoder_that_cannot_honour_it(installed_registry):
    class Always:
        @hookimpl
        def tokensmith_register_constraints(self):
            return [Component("always", lambda: FunctionConstraint(lambda b: True))]

    installed_registry.pm.register(Always())
    reg = type(installed_registry)(installed_registry.pm, env={})
    spec = PipelineSpec(model="tiny-llama", decoder="greedy", constraint="always",
                        runtime={"device": "cpu"})
    problems = reg.validate(spec)
    assert len(problems) == 1 and isinstance(problems[0], IncompatibleComponentsError)


@pytest.mark.needs_baselines
def test_tiny_pipeline_builds_and_generates(installed_registry):
    spec = PipelineSpec(model={"source": "tiny-llama", "seed": 1}, decoder="greedy",
                        runtime={"device": "cpu", "dtype": "fp32"})
    pipe = installed_registry.build_pipeline(spec)
    gen = pipe.generate("The capital", max_new_tokens=4)
    assert len(gen.ids) <= 4 and gen.counters["lm_calls"] >= 1
    assert pipe.to_config() == spec.to_config()
    assert pipe.reports == [] and pipe.tokenizer is pipe.lm.tokenizer  # empty slots keep the model's own
    explicit = attrs.evolve(spec, tokenizer="model", normalization="identity", embedding="model")
    pipe = installed_registry.build_pipeline(explicit)
    assert [r.component for r in pipe.reports] == ["normalization 'identity'", "embedding 'model'"]


@pytest.mark.needs_baselines
def test_pipeline_built_hook_sees_the_pipeline(installed_registry):
    seen = []

    class Watcher:
        @hookimpl
        def tokensmith_pipeline_built(self, pipeline):
            seen.append(pipeline)

    installed_registry.pm.register(Watcher())
    pipe = installed_registry.build_pipeline(PipelineSpec(model="tiny-gpt2", runtime={"device": "cpu"}))
    assert seen == [pipe]


@pytest.mark.needs_baselines
@pytest.mark.parametrize("name", ["smollm2-greedy.toml", "tiny-sampling.toml"])
def test_example_pipelines_validate(installed_registry, name):
    from pathlib import Path

    spec = PipelineSpec.from_toml(Path(__file__).resolve().parents[1] / "examples" / name)
    assert installed_registry.validate(spec) == []
    if spec.model.source.startswith("tiny"):
        gen = installed_registry.build_pipeline(spec).generate(spec.generate["prompt"])
        assert len(gen.ids) == spec.generate["max_new_tokens"] or gen.finish_reason == "stop"


def test_find_norm_layers_skips_inside_surgery_replacements():
    import torch.nn as nn

    from tokensmith.core.normalization import find_norm_layers

    class Wrapper(nn.Module):
        tokensmith_replacement = True

        def __init__(self, original):
            super().__init__()
            self.original = original

    model = nn.Sequential(nn.LayerNorm(4), Wrapper(nn.LayerNorm(4)), nn.GroupNorm(2, 4))
    supported, unsupported = find_norm_layers(model)
    assert [layer.path for layer in supported] == ["0"]
    assert unsupported == ["2 (GroupNorm)"]



def test_a_constraint_needs_a_decoder(make_registry):
    problems = make_registry().validate(PipelineSpec(model="tiny-llama", constraint="x",
                                                     runtime={"device": "cpu"}))
    assert any("needs a decoder" in str(p) for p in problems)


def test_core_alone_builds_a_pipeline_with_empty_slots(make_registry):
    pipe = make_registry().build_pipeline(PipelineSpec(model="tiny-gpt2", runtime={"device": "cpu"}))
    assert pipe.lm is not None and pipe.decoder is None and pipe.reports == []
    assert pipe.lm.score("hello") < 0


def test_constraint_tables_combine_with_all_and_any(tmp_path):
    """[[constraint]] lists mean all of them; {any = [...]} a union; nested as in code."""
    from tokensmith import ComponentRef, ConstraintSet

    path = tmp_path / "c.toml"
    path.write_text('[model]\nsource = "tiny-llama"\n[decoder]\ntype = "awrs"\n'
                    '[[constraint]]\ntype = "regex"\npattern = "[0-9]+"\n'
                    '[[constraint]]\nany = [{type = "max-bytes", limit = 3}, {type = "python"}]\n')
    spec = PipelineSpec.from_toml(path)
    assert spec.constraint == ConstraintSet("all", (
        ComponentRef("regex", {"pattern": "[0-9]+"}),
        ConstraintSet("any", (ComponentRef("max-bytes", {"limit": 3}), ComponentRef("python")))))
    assert PipelineSpec.from_config(spec.to_config()) == spec
    (tmp_path / "again.toml").write_text(spec.to_toml())
    assert PipelineSpec.from_toml(tmp_path / "again.toml") == spec
    assert [r.type for _, _, r in spec.refs() if _ == "constraint"] == ["regex", "max-bytes", "python"]


def test_combined_constraints_build_into_all_of_and_any_of(make_registry):
    from tokensmith import AllOf, AnyOf

    class Parts2:
        @hookimpl
        def tokensmith_register_constraints(self):
            return [Component("short", lambda limit: FunctionConstraint(lambda b: len(b) <= limit)),
                    Component("digits", lambda: FunctionConstraint(lambda b: b.isdigit() or b == b""))]

    reg = make_registry(Parts2())
    both = reg.build("constraint", [{"type": "short", "limit": 2}, "digits"])
    assert isinstance(both, AllOf) and both.allows(b"12") and not both.allows(b"123")
    assert not both.allows(b"a")
    either = reg.build("constraint", {"any": [{"type": "short", "limit": 1}, "digits"]})
    assert isinstance(either, AnyOf) and either.allows(b"a") and either.allows(b"1234")
    assert not either.allows(b"ab")


@pytest.mark.needs_baselines
def test_special_strings_in_a_prompt_are_text_unless_trusted(installed_registry):
    from tokensmith import TrustedText

    pipe = installed_registry.build_pipeline(PipelineSpec(model="tiny-llama", decoder="greedy",
                                                          stages=[], runtime={"device": "cpu"}))
    tok = pipe.tokenizer
    eot = next(i for i, s in tok.special_tokens.items() if s == "<|endoftext|>")
    seen = []
    original = tok.encode

    def spy(text, **kw):
        enc = original(text, **kw)
        seen.append(enc.ids)
        return enc

    tok.encode = spy
    try:
        pipe.generate("hi<|endoftext|>", max_new_tokens=1)
        pipe.generate(TrustedText("hi<|endoftext|>"), max_new_tokens=1)
    finally:
        del tok.encode
    assert eot not in seen[0] and eot in seen[1]
    assert isinstance(pipe.prepare(TrustedText("a")), TrustedText)


def test_read_toml_and_parse_toml_name_the_file_and_the_component(tmp_path):
    from tokensmith import parse_toml, read_toml

    good = tmp_path / "forest.toml"
    good.write_text('[a]\nb = "c"\n')
    assert read_toml(good, "forest", example="docs/x.md") == {"a": {"b": "c"}}
    assert parse_toml('x = 1', "forest", example="docs/x.md") == {"x": 1}
    cases = [(tmp_path / "absent.toml", "does not exist"), (tmp_path, "is a directory"),
             (tmp_path / "latin1.toml", "not UTF-8"), (tmp_path / "broken.toml", "invalid TOML"),
             (tmp_path / "deep.toml", "nested too deeply")]
    (tmp_path / "latin1.toml").write_bytes(b'x = "\xe9"\n')
    (tmp_path / "broken.toml").write_text("[a\n")
    (tmp_path / "deep.toml").write_text("x = " + "[" * 100_000 + "]" * 100_000)
    for path, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            read_toml(path, "forest", example="docs/x.md", component="my plugin")
        assert info.value.component == "my plugin"
    with pytest.raises(ConfigError, match="TOML text \\(str\\), got bytes"):
        parse_toml(b"x = 1", "forest", example="docs/x.md")
