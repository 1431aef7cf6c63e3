import pytest

from tokensmith import (
    Component,
    ComponentCollisionError,
    ConfigError,
    Decoder,
    ModelSource,
    PluginLoadError,
    UnknownComponentError,
    hookimpl,
)
from tokensmith.registry import Registry


class Quiet(Decoder):
    name = "quiet"

    def generate(self, lm, prompt, *, max_new_tokens=32, constraint=None, seed=None):
        return self.begin(lm, prompt, max_new_tokens=max_new_tokens, seed=seed).generation(
            [], b"", finish_reason="stop")


class DecoderPlugin:
    """An in-process plugin; registered on a fresh manager per test."""

    def __init__(self, *names):
        self.names = names

    @hookimpl
    def tokensmith_register_decoders(self):
        return [Component(n, Quiet, f"decoder {n}") for n in self.names]


def test_components_are_stamped_with_provenance(make_registry):
    reg = make_registry(DecoderPlugin("beam"))
    record = reg.get("decoder", "beam")
    assert record.kind == "decoder" and record.plugin and record.distribution == "(in-process)"


def test_unknown_name_suggests_close_names_and_distribution(make_registry):
    reg = make_registry(DecoderPlugin("greedy", "beam"))
    with pytest.raises(UnknownComponentError) as info:
        reg.get("decoder", "gredy")
    text = str(info.value)
    assert "did you mean 'greedy'" in text and "(in-process)" in text
    assert "pip install" not in text  # no invitation to install a typo (a typosquat's name)


def test_unknown_kind(make_registry):
    with pytest.raises(ConfigError, match="unknown component kind"):
        make_registry().components("decoders")


def test_collision_names_both_distributions(fake_distributions, good_plugin):
    fake_distributions("tokensmith-alpha", good_plugin.format(name="upper"))
    fake_distributions("tokensmith-beta", good_plugin.format(name="upper"))
    reg = Registry.from_environment(env={"TOKENSMITH_LOAD_PLUGINS": "tokensmith-alpha,tokensmith-beta"})
    with pytest.raises(ComponentCollisionError) as info:
        reg.get("tokenizer_stage", "upper")
    assert "tokensmith-alpha" in str(info.value) and "tokensmith-beta" in str(info.value)
    assert "tokensmith-beta:upper" in str(info.value)  # the hint names the qualified names
    assert reg.get("tokenizer_stage", "tokensmith-beta:upper").distribution == "tokensmith-beta"
    assert reg.get("tokenizer_stage", "Tokensmith_Alpha:upper").distribution == "tokensmith-alpha"


def test_broken_plugin_warns_and_others_still_load(fake_distributions, good_plugin):
    fake_distributions("tokensmith-broken", "raise RuntimeError('boom at import')")
    fake_distributions("tokensmith-fine", good_plugin.format(name="shout"))
    only = {"TOKENSMITH_LOAD_PLUGINS": "tokensmith-broken,tokensmith-fine"}
    with pytest.warns(RuntimeWarning, match="tokensmith-broken") as record:
        reg = Registry.from_environment(env=only)
    assert "boom at import" in str(record[0].message)
    assert reg.get("tokenizer_stage", "shout").distribution == "tokensmith-fine"


def test_strict_mode_turns_a_broken_plugin_into_an_error(fake_distributions):
    fake_distributions("tokensmith-broken", "raise RuntimeError('boom')")
    with pytest.raises(PluginLoadError, match="tokensmith-broken"):
        Registry.from_environment(env={"TOKENSMITH_STRICT_PLUGINS": "1",
                                       "TOKENSMITH_LOAD_PLUGINS": "tokensmith-broken"})


def test_hook_that_raises_is_reported_with_its_plugin(fake_distributions):
    fake_distributions("tokensmith-hookfail", """
from tokensmith import hookimpl
@hookimpl
def tokensmith_register_decoders():
    raise ValueError("bad records")
""")
    only = {"TOKENSMITH_LOAD_PLUGINS": "tokensmith-hookfail"}
    with pytest.warns(RuntimeWarning, match="tokensmith-hookfail"):
        Registry.from_environment(env=only)
    with pytest.raises(PluginLoadError, match="bad records"):
        Registry.from_environment(env={**only, "TOKENSMITH_STRICT_PLUGINS": "yes"})


def test_allow_and_deny_lists(fake_distributions, good_plugin):
    fake_distributions("tokensmith-one", good_plugin.format(name="one"))
    fake_distributions("tokensmith-two", good_plugin.format(name="two"))
    names = lambda reg: {c.name for c in reg.components("tokenizer_stage")}  # noqa: E731
    assert names(Registry.from_environment(env={})) >= {"one", "two"}
    only = Registry.from_environment(env={"TOKENSMITH_LOAD_PLUGINS": "tokensmith-one"})
    assert "one" in names(only) and "two" not in names(only)
    denied = Registry.from_environment(env={"TOKENSMITH_DISABLE_PLUGINS": "tokensmith-one"})
    assert "one" not in names(denied) and "two" in names(denied)


def test_each_registry_has_its_own_manager(make_registry):
    a, b = make_registry(DecoderPlugin("x")), make_registry()
    assert a.pm is not b.pm
    with pytest.raises(UnknownComponentError):
        b.get("decoder", "x")


def test_misspelled_hook_is_caught():
    class Typo:
        @hookimpl
        def tokensmith_register_decoder(self):  # missing "s"
            return []

    with pytest.warns(RuntimeWarning, match="did you mean 'tokensmith_register_decoders'"):
        reg = Registry.from_environment(plugins=[Typo()], entry_points=False, env={})
    assert "Typo" in reg.failed
    with pytest.raises(PluginLoadError, match="tokensmith_register_decoder"):
        Registry.from_environment(plugins=[Typo()], entry_points=False,
                                  env={"TOKENSMITH_STRICT_PLUGINS": "1"})


def test_record_of_wrong_type_is_rejected(make_registry):
    class Bad:
        @hookimpl
        def tokensmith_register_decoders(self):
            return ["greedy"]

    with pytest.warns(RuntimeWarning, match="not a tokensmith.Component record"):
        make_registry(Bad())


def test_lazy_factory_string_resolves(make_registry):
    class Lazy:
        @hookimpl
        def tokensmith_register_constraints(self):
            return [Component("always", "tokensmith.core.constraint:FunctionConstraint")]

    reg = make_registry(Lazy())
    assert reg.get("constraint", "always").resolve_factory().__name__ == "FunctionConstraint"


def test_tokensmith_load_model_first_result_wins(make_registry, runtime, tiny_gpt2):
    class Source:
        @hookimpl
        def tokensmith_load_model(self, source, runtime):
            return tiny_gpt2 if source.source == "my-gpt2" else None

    reg = make_registry(Source())
    assert reg.load_model(ModelSource("my-gpt2"), runtime) is tiny_gpt2
    model, tok = reg.load_model(ModelSource("tiny-llama"), runtime)  # falls through to the core
    assert type(model).__name__ == "LlamaForCausalLM"


def test_tokensmith_wrap_language_model_lets_a_plugin_supply_the_lm(make_registry, tiny_gpt2):
    pytest.importorskip("tokensmith_baselines")
    from tokensmith import HFCausalLM, PipelineSpec

    class Counting(HFCausalLM):
        pass

    class Wrap:
        @hookimpl
        def tokensmith_wrap_language_model(self, model, tokenizer, runtime):
            return Counting(model, tokenizer, runtime, name="counting")

    reg = make_registry(Wrap(), entry_points=True)
    pipe = reg.build_pipeline(PipelineSpec(model="tiny-gpt2", decoder="greedy", runtime={"device": "cpu"}))
    assert type(pipe.lm) is Counting and len(pipe.generate("a", max_new_tokens=2).ids) <= 2
