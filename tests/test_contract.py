"""The plugin contract, hardened: one test (or more) per failure found by writing a
third-party plugin from the docs and by a fault audit with fake plugin packages.
Each failed on the contract before this one."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import warnings

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tokensmith
from tokensmith import (
    Component,
    ComponentCollisionError,
    ComponentError,
    ConfigError,
    Constraint,
    Decoder,
    IncompatibleComponentsError,
    InputError,
    ModelInfo,
    PipelineSpec,
    PluginLoadError,
    Registry,
    TokensmithError,
    UnknownComponentError,
    ValidationError,
    hookimpl,
    positive,
)
from tokensmith.cli import main

PROBE_STAGE = """
from tokensmith import Component, TokenizerStage, hookimpl

class Upper(TokenizerStage):
    name = "upper"
    def normalize(self, text):
        return text.upper()

@hookimpl
def tokensmith_register_tokenizer_stages():
    return [Component("{name}", Upper, "upper-cases text")]
"""


def only(*dists: str, **extra: str) -> dict[str, str]:
    return {"TOKENSMITH_LOAD_PLUGINS": ",".join(dists), **extra}


def run_cli(capsys, monkeypatch, env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    for key in ("TOKENSMITH_LOAD_PLUGINS", "TOKENSMITH_DISABLE_PLUGINS", "TOKENSMITH_STRICT_PLUGINS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    tokensmith.default_registry.cache_clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = main(list(argv))
    finally:
        tokensmith.default_registry.cache_clear()
    out = capsys.readouterr()
    return code, out.out, out.err


@attrs.define
class Plain(Decoder):
    """A decoder with one typed parameter, built the way the tutorial teaches."""

    name = "plain"
    accepts_constraint = True
    temperature: float = attrs.field(default=1.0, validator=positive)
    top_k: int = 0

    def generate(self, lm, prompt, *, max_new_tokens=32, constraint=None, seed=None):
        request = self.begin(lm, prompt, max_new_tokens=max_new_tokens, constraint=constraint, seed=seed)
        return request.generation([], b"", finish_reason="stop")


class Loads:
    """Counts model loads, so a test can show validation failed before any."""

    def __init__(self):
        self.loads = 0

    @hookimpl(tryfirst=True)
    def tokensmith_load_model(self, source, runtime):
        self.loads += 1


def registry_with(make_registry, *records_by_hook, loads: Loads | None = None):
    class P:
        pass

    for hook, records in records_by_hook:
        def impl(records=records):
            return records

        impl.__name__ = hook
        setattr(P, hook, staticmethod(hookimpl(impl)))
    return make_registry(P(), *([loads] if loads else []))


# 1 ----------------------------------------------------------------------------------
def test_1_misspelt_hook_skips_the_plugin_with_a_did_you_mean(fake_distributions, capsys, monkeypatch):
    fake_distributions("tokensmith-typo", """
from tokensmith import Component, hookimpl
@hookimpl
def tokensmith_register_decoder():
    return []
""")
    fake_distributions("tokensmith-fine", PROBE_STAGE.format(name="shout"))
    env = only("tokensmith-typo", "tokensmith-fine")
    with pytest.warns(RuntimeWarning, match="tokensmith-typo") as record:
        reg = Registry.from_environment(env=env)
    assert "did you mean 'tokensmith_register_decoders'" in str(record[0].message)
    assert reg.get("tokenizer_stage", "shout").distribution == "tokensmith-fine"
    assert "tokensmith-typo" in {f.distribution for f in reg.failed.values()}
    with pytest.raises(PluginLoadError, match="tokensmith_register_decoder"):
        Registry.from_environment(env={**env, "TOKENSMITH_STRICT_PLUGINS": "1"})
    code, out, err = run_cli(capsys, monkeypatch, env, "plugins")
    assert code == 0 and "Traceback" not in err and "FAILED" in out


def test_1_a_known_hook_without_the_marker_is_reported(make_registry):
    class Unmarked:
        def tokensmith_register_decoders(self):
            return []

    with pytest.warns(RuntimeWarning, match="not marked with @tokensmith.hookimpl"):
        make_registry(Unmarked())


# 2 ----------------------------------------------------------------------------------
def test_2_a_collision_is_an_error_only_where_the_name_is_used(fake_distributions, make_registry,
                                                               capsys, monkeypatch):
    fake_distributions("tokensmith-first", PROBE_STAGE.format(name="upper"))
    fake_distributions("tokensmith-second", PROBE_STAGE.format(name="upper"))
    fake_distributions("tokensmith-third", PROBE_STAGE.format(name="other"))
    env = only("tokensmith-first", "tokensmith-second", "tokensmith-third")
    reg = Registry.from_environment(env=env)
    unused = PipelineSpec(model="tiny-llama", stages=["other"], runtime={"device": "cpu"})
    assert reg.validate(unused) == []
    used = PipelineSpec(model="tiny-llama", stages=["upper"], runtime={"device": "cpu"})
    problems = reg.validate(used)
    assert len(problems) == 1 and isinstance(problems[0], ComponentCollisionError)
    assert "tokensmith-first" in str(problems[0]) and "tokensmith-second" in str(problems[0])
    picked = PipelineSpec(model="tiny-llama", stages=["tokensmith-second:upper"], runtime={"device": "cpu"})
    assert reg.validate(picked) == []
    assert reg.build("tokenizer_stage", "tokensmith-second:upper").normalize("a") == "A"
    code, out, _ = run_cli(capsys, monkeypatch, env, "plugins")
    assert code == 0 and "collision: tokenizer_stage 'upper'" in out
    code, out, _ = run_cli(capsys, monkeypatch, env, "plugins", "--json")
    rows = {r["distribution"]: r for r in json.loads(out)}
    assert rows["tokensmith-first"]["components"][0]["collides_with"] == ["tokensmith-second"]


def test_2_qualified_names_that_match_nothing_say_who_provides(fake_distributions):
    fake_distributions("tokensmith-first", PROBE_STAGE.format(name="upper"))
    reg = Registry.from_environment(env=only("tokensmith-first"))
    with pytest.raises(UnknownComponentError, match="tokensmith-first:upper"):
        reg.get("tokenizer_stage", "nobody:upper")


# 3 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("factory", ["tokensmith_no_such_module:Thing",
                                     "tokensmith.core.constraint:FunctionConstrant", "no-colon"])
def test_3_a_bad_lazy_factory_fails_validation_before_the_model_loads(make_registry, factory):
    loads = Loads()
    reg = registry_with(make_registry, ("tokensmith_register_constraints", [Component("c", factory)]),
                        ("tokensmith_register_decoders", [Component("plain", Plain)]), loads=loads)
    spec = PipelineSpec(model="tiny-llama", decoder="plain", constraint="c", runtime={"device": "cpu"})
    problems = reg.validate(spec)
    assert any(isinstance(p, ComponentError) and p.component == "constraint 'c'"
               and p.plugin == "(in-process)" for p in problems), problems
    with pytest.raises(ValidationError):
        reg.build_pipeline(spec)
    assert loads.loads == 0


# 4 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,hook", [("constraint", "tokensmith_register_constraints"),
                                       ("decoder", "tokensmith_register_decoders"),
                                       ("tokenizer_stage", "tokensmith_register_tokenizer_stages")])
def test_4_a_factory_returning_the_wrong_type_fails_at_build(make_registry, kind, hook):
    reg = registry_with(make_registry, (hook, [Component("wrong", lambda: object())]))
    with pytest.raises(ComponentError, match="not a") as info:
        reg.build(kind, "wrong")
    assert info.value.component == f"{kind} 'wrong'" and info.value.plugin == "(in-process)"


def test_4_in_a_pipeline_the_wrong_type_fails_in_build_pipeline_not_generate(make_registry):
    reg = registry_with(make_registry, ("tokensmith_register_constraints", [Component("wrong", object)]),
                        ("tokensmith_register_decoders", [Component("plain", Plain)]))
    with pytest.raises(ComponentError, match="not a Constraint"):
        reg.build_pipeline(PipelineSpec(model="tiny-llama", decoder="plain", constraint="wrong",
                                        runtime={"device": "cpu"}))


# 5 ----------------------------------------------------------------------------------
def test_5_foreign_exceptions_are_wrapped_naming_plugin_and_component(make_registry):
    def boom():
        raise KeyError("missing-resource")

    reg = registry_with(make_registry, ("tokensmith_register_constraints", [Component("boom", boom)]))
    with pytest.raises(ComponentError) as info:
        reg.build("constraint", "boom")
    assert isinstance(info.value.__cause__, KeyError)
    text = str(info.value)
    assert "constraint 'boom'" in text and "(in-process)" in text and "missing-resource" in text


def test_5_a_tokensmith_error_from_a_factory_gets_the_plugin_named_at_str(make_registry):
    def refuse():
        raise ConfigError("the schema has no 'type'")

    reg = registry_with(make_registry, ("tokensmith_register_constraints", [Component("refuse", refuse)]))
    with pytest.raises(ConfigError) as info:
        reg.build("constraint", "refuse")
    assert str(info.value).startswith("[constraint 'refuse' from (in-process)] the schema has no 'type'")


def test_5_errors_render_naming_added_after_construction():
    err = InputError("bad")
    err.component, err.plugin = "decoder 'x'", "tokensmith-x"
    assert str(err) == "[decoder 'x' from tokensmith-x] bad"


def test_5_errors_at_generate_time_name_the_plugin(make_registry):
    @attrs.define
    class Explodes(Decoder):
        name = "explodes"

        def generate(self, lm, prompt, *, max_new_tokens=32, constraint=None, seed=None):
            self.begin(lm, prompt, max_new_tokens=max_new_tokens, seed=seed)
            raise ZeroDivisionError("oops")

    reg = registry_with(make_registry, ("tokensmith_register_decoders", [Component("explodes", Explodes)]))
    pipe = reg.build_pipeline(PipelineSpec(model="tiny-llama", decoder="explodes", runtime={"device": "cpu"}))
    with pytest.raises(ComponentError, match=r"\[decoder 'explodes' from \(in-process\)\] generate raised"):
        pipe.generate("hi")
    with pytest.raises(InputError, match=r"\[decoder 'explodes' from \(in-process\)\]"):
        pipe.generate("hi", max_new_tokens=-1)


# 6 ----------------------------------------------------------------------------------
def test_6_a_value_of_the_wrong_type_names_parameter_component_and_type(make_registry):
    reg = registry_with(make_registry, ("tokensmith_register_decoders", [Component("plain", Plain)]))
    with pytest.raises(ConfigError) as info:
        reg.build("decoder", {"type": "plain", "temperature": "hot"})
    text = str(info.value)
    assert "'temperature' must be float, got str 'hot'" in text and "decoder 'plain'" in text
    assert "not supported between" not in text


_WRONG = st.one_of(st.text(max_size=5), st.booleans(), st.none(), st.lists(st.integers(), max_size=2),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                   st.sampled_from([math.nan, math.inf, -math.inf, 2.5, -3]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(temperature=_WRONG, top_k=_WRONG)
def test_6_every_bad_value_is_a_config_error(make_registry, temperature, top_k):
    reg = registry_with(make_registry, ("tokensmith_register_decoders", [Component("plain", Plain)]))
    try:
        obj = reg.build("decoder", {"type": "plain", "temperature": temperature, "top_k": top_k})
    except ConfigError:
        return
    # what passed is exactly what the annotations and the validator allow
    assert isinstance(obj.temperature, float) and math.isfinite(obj.temperature) and obj.temperature > 0
    assert type(obj.top_k) is int


def test_6_the_shared_validators_check_types_themselves():
    with pytest.raises(TypeError, match="temperature must be a number, got str 'hot'"):
        Plain(temperature="hot")


# 7 ----------------------------------------------------------------------------------
def test_7_an_unknown_key_does_not_hide_a_bad_value(make_registry):
    reg = registry_with(make_registry, ("tokensmith_register_decoders", [Component("plain", Plain)]))
    spec = PipelineSpec(model="tiny-llama", decoder={"type": "plain", "tempreature": 1, "top_k": "x"},
                        runtime={"device": "tpu", "dtype": "fp99", "seed": -1})
    text = "\n".join(map(str, reg.validate(spec)))
    for want in ("unknown parameter 'tempreature' (did you mean 'temperature'?)", "'top_k' must be int",
                 "unknown device 'tpu'", "unknown dtype 'fp99'", "seed must be an int"):
        assert want in text, text


# 8 ----------------------------------------------------------------------------------
def test_8_requires_is_checked_before_the_model_loads(make_registry):
    class Source:
        @hookimpl
        def tokensmith_describe_model(self, source):
            return ModelInfo("encoder-only", (), frozenset()) if source.source == "encoder-only" else None

    loads = Loads()
    reg = registry_with(make_registry, ("tokensmith_register_decoders",
                                        [Component("needy", Plain, requires=("byte_view",))]), loads=loads)
    reg.pm.register(Source())
    problems = reg.validate(PipelineSpec(model="encoder-only", decoder="needy"))
    text = "\n".join(map(str, problems))
    assert "needs a tokenizer with a byte view" in text and "not a causal LM" in text
    with pytest.raises(ValidationError):
        reg.build_pipeline(PipelineSpec(model="encoder-only", decoder="needy"))
    assert loads.loads == 0


def test_8_an_unknown_requirement_is_refused_at_registration(make_registry):
    with pytest.warns(RuntimeWarning, match="unknown capabilities \\['byteview'\\]"):
        reg = registry_with(make_registry, ("tokensmith_register_decoders",
                                            [Component("typo", Plain, requires=("byteview",)),
                                             Component("fine", Plain)]))
    assert [c.name for c in reg.components("decoder")] == ["fine"]


def test_8_requires_is_checked_right_after_loading_when_only_loading_can_tell(make_registry, tiny_gpt2):
    class Opaque:
        @hookimpl
        def tokensmith_load_model(self, source):
            if source.source == "opaque":
                import copy

                model, tok = tiny_gpt2
                tok = copy.copy(tok)
                tok.__class__ = type("NoByteView", (type(tok),), {"has_byte_view": property(lambda s: False)})
                return model, tok

    built = []

    @attrs.define
    class Surgery:
        name = "count"

        def replace(self, model, *, inplace=True):
            built.append(1)
            return model, None

    reg = registry_with(make_registry, ("tokensmith_register_decoders",
                                        [Component("needy", Plain, requires=("byte_view",))]),
                        ("tokensmith_register_normalizations", [Component("count", Surgery)]))
    reg.pm.register(Opaque())
    with pytest.raises(ValidationError, match="needs a tokenizer with a byte view"):
        reg.build_pipeline(PipelineSpec(model="opaque", decoder="needy", normalization="count",
                                        runtime={"device": "cpu"}))
    assert built == []  # no surgery ran


# 9 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model,want", [
    ({"source": "smollm2", "progres": False}, "unknown parameter 'progres' (did you mean 'progress'?)"),
    ({"source": "smollm2", "progress": "no"}, "'progress' must be bool"),
    ({"source": "minilm", "pooling": "mean"}, "unknown parameter 'pooling'"),
    ({"source": "tiny-llama", "layers": "two"}, "'layers' must be int"),
    ({"source": "tiny-llama", "layers": 0}, "layers must be >= 1"),
    ({"source": "tiny-gpt2", "tokenizer": "wordpiece"}, "'tokenizer' must be 'byte_level' | 'byte_fallback'"),
])
def test_9_model_parameters_are_checked(make_registry, model, want):
    problems = make_registry().validate(PipelineSpec(model=model, runtime={"device": "cpu"}))
    assert any(want in str(p) for p in problems), problems


def test_9_tiny_model_parameters_still_work(make_registry):
    pipe = make_registry().build_pipeline(PipelineSpec(model={"source": "tiny-gpt2", "layers": 1,
                                                              "seed": 3}, runtime={"device": "cpu"}))
    assert pipe.model.config.n_layer == 1


# 10 ---------------------------------------------------------------------------------
def test_10_the_pytest_plugin_loads_without_hypothesis(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_one(runtime):\n    assert runtime.device == 'cpu'\n")
    script = textwrap.dedent(f"""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "hypothesis" or name.startswith("hypothesis."):
                    raise ModuleNotFoundError("No module named 'hypothesis'", name="hypothesis")
        sys.meta_path.insert(0, Block())
        for name in [m for m in sys.modules if m.startswith("hypothesis")]:
            del sys.modules[name]
        import pytest
        code = pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                            {str(tmp_path)!r}])
        try:
            from tokensmith.testing import DecoderContract
        except ImportError as exc:
            assert "tokensmith[test]" in str(exc), exc
        else:
            raise SystemExit("contracts imported without hypothesis")
        raise SystemExit(int(code))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


# 11 ---------------------------------------------------------------------------------
def test_11_a_closed_pipe_ends_quietly(tmp_path):
    # cwd: not the source tree, whose tokensmith/ folder would shadow the installed package
    result = subprocess.run(f"{sys.executable} -m tokensmith.cli plugins | head -1", shell=True,
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.stdout.strip() and "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


DEMO = """
from tokensmith import Component, Demo, bold, hookimpl

class Shout(Demo):
    name = "shout"
    def run(self, pipeline, out):
        print("result:", bold("LOUD", out), file=out)
        return {"ok": True}

@hookimpl
def tokensmith_register_demos():
    return [Component("shout", Shout, "prints in bold on a terminal")]
"""


def test_11_demo_output_is_plain_off_a_terminal_and_needs_no_baselines(fake_distributions, capsys,
                                                                       monkeypatch):
    fake_distributions("tokensmith-shout", DEMO)
    code, out, err = run_cli(capsys, monkeypatch, only("tokensmith-shout"), "demo", "--model", "tiny-llama",
                             "--device", "cpu")
    assert code == 0, err
    assert "result: LOUD" in out and "\x1b[" not in out


def test_11_bold_only_on_a_terminal():
    class Tty:
        def isatty(self):
            return True

    assert tokensmith.bold("x", Tty()).startswith("\x1b[1m") or "NO_COLOR" in __import__("os").environ
    assert tokensmith.bold("x", object()) == "x"


def test_11_generate_without_baselines_says_what_to_install(capsys, monkeypatch):
    code, _, err = run_cli(capsys, monkeypatch, {"TOKENSMITH_DISABLE_PLUGINS": "tokensmith-baselines"},
                           "generate", "hi", "--model", "tiny-llama", "--device", "cpu")
    assert code == 2 and "decoder 'greedy'" in err and "pip install tokensmith-baselines" in err


def test_11_the_install_hint_names_only_known_providers(make_registry):
    reg = make_registry()
    with pytest.raises(UnknownComponentError) as typo:
        reg.get("decoder", "gredy")
    assert "pip install" not in str(typo.value)
    with pytest.raises(UnknownComponentError) as known:
        reg.get("decoder", "byteprob")
    assert "pip install tokensmith-byteprob" in str(known.value)


def test_11_a_failed_plugin_is_listed_with_its_error(fake_distributions, capsys, monkeypatch):
    fake_distributions("tokensmith-broken", "raise RuntimeError('boom at import')")
    env = only("tokensmith-broken")
    code, out, _ = run_cli(capsys, monkeypatch, env, "plugins")
    assert code == 0 and "tokensmith-broken" in out and "boom at import" in out
    code, out, _ = run_cli(capsys, monkeypatch, env, "plugins", "--json")
    row = next(r for r in json.loads(out) if r["distribution"] == "tokensmith-broken")
    assert row["status"] == "failed" and "boom at import" in row["error"]


@pytest.mark.parametrize("variable", ["TOKENSMITH_DISABLE_PLUGINS", "TOKENSMITH_LOAD_PLUGINS"])
def test_11_a_misspelt_plugin_name_in_the_environment_warns(fake_distributions, variable):
    fake_distributions("tokensmith-real", PROBE_STAGE.format(name="real"))
    with pytest.warns(RuntimeWarning, match="'tokensmith-raal'.*did you mean 'tokensmith-real'"):
        Registry.from_environment(env={variable: "tokensmith-raal"})


def test_11_every_subcommand_help_lists_its_options(capsys):
    for command in ("plugins", "components", "run", "generate", "demo"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
        assert "options:" in capsys.readouterr().out


def test_11_an_unexpected_exception_is_one_line(capsys, monkeypatch):
    import tokensmith.cli as cli

    monkeypatch.setattr(cli, "cmd_plugins", lambda args: 1 / 0)
    code = main(["plugins"])
    err = capsys.readouterr().err
    assert code == 3 and "ZeroDivisionError" in err and "Traceback" not in err
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "plugins"])


# 13 ---------------------------------------------------------------------------------
def test_13_sys_exit_at_import_is_isolated(fake_distributions, capsys, monkeypatch):
    fake_distributions("tokensmith-quitter", "import sys\nsys.exit(3)\n")
    fake_distributions("tokensmith-fine", PROBE_STAGE.format(name="fine"))
    env = only("tokensmith-quitter", "tokensmith-fine")
    with pytest.warns(RuntimeWarning, match="tokensmith-quitter.*SystemExit"):
        reg = Registry.from_environment(env=env)
    assert reg.get("tokenizer_stage", "fine")
    code, out, _ = run_cli(capsys, monkeypatch, env, "plugins")
    assert code == 0 and "tokensmith-quitter" in out


def test_13_a_hook_from_a_newer_core_is_isolated(fake_distributions):
    fake_distributions("tokensmith-future", """
from tokensmith import hookimpl
@hookimpl
def tokensmith_register_quantizers():
    return []
""")
    with pytest.warns(RuntimeWarning, match="tokensmith-future.*tokensmith_register_quantizers"):
        reg = Registry.from_environment(env=only("tokensmith-future"))
    assert "tokensmith-future" in {f.distribution for f in reg.failed.values()}


def test_13_hook_arguments_not_in_the_spec_are_isolated(make_registry):
    class WrongArgs:
        @hookimpl
        def tokensmith_configure(self, runtime, verbosity):
            pass

    with pytest.warns(RuntimeWarning, match="cannot be registered"):
        make_registry(WrongArgs())


@pytest.mark.parametrize("hook", ["tokensmith_load_model", "tokensmith_configure",
                                  "tokensmith_pipeline_built", "tokensmith_describe_model",
                                  "tokensmith_wrap_language_model"])
def test_13_a_raising_model_or_pipeline_hook_is_isolated(make_registry, hook):
    args = {"tokensmith_load_model": "source, runtime", "tokensmith_configure": "runtime",
            "tokensmith_pipeline_built": "pipeline", "tokensmith_describe_model": "source",
            "tokensmith_wrap_language_model": "model, tokenizer"}[hook]
    namespace: dict = {"hookimpl": hookimpl}
    exec(f"class Raises:\n    @hookimpl\n    def {hook}(self, {args}):\n"
         "        raise RuntimeError('bad hook')\n", namespace)
    spec = PipelineSpec(model="tiny-llama", runtime={"device": "cpu"})
    with pytest.warns(RuntimeWarning, match=f"{hook} of plugin .* raised RuntimeError: bad hook"):
        pipe = make_registry(namespace["Raises"]()).build_pipeline(spec)
    assert pipe.lm is not None
    with pytest.raises(TokensmithError, match="bad hook") as info:  # strict: an error naming the hook
        make_registry(namespace["Raises"](), env={"TOKENSMITH_STRICT_PLUGINS": "1"}).build_pipeline(spec)
    errors = getattr(info.value, "problems", [info.value])
    assert any(isinstance(e, PluginLoadError) and hook in str(e) for e in errors)


def test_13_a_wrap_hook_returning_garbage_falls_back_with_a_warning(make_registry):
    class Garbage:
        @hookimpl
        def tokensmith_wrap_language_model(self, model):
            return "not a language model"

        @hookimpl
        def tokensmith_load_model(self, source):
            return (object(), "not a tokenizer") if source.source == "junk" else None

    reg = make_registry(Garbage())
    with pytest.warns(RuntimeWarning, match="not a tokensmith.LanguageModel"):
        pipe = reg.build_pipeline(PipelineSpec(model="tiny-llama", runtime={"device": "cpu"}))
    assert type(pipe.lm).__name__ == "HFCausalLM"
    with pytest.warns(RuntimeWarning, match=r"not \(model, Tokenizer\)"), pytest.raises(TokensmithError):
        reg.build_pipeline(PipelineSpec(model="junk", runtime={"device": "cpu"}))


@pytest.mark.parametrize("spelling", ["TOKENSMITH_FINE", "tokensmith_fine", "Tokensmith-Fine"])
def test_13_allowlist_names_match_like_distribution_names(fake_distributions, spelling):
    fake_distributions("tokensmith-fine", PROBE_STAGE.format(name="fine"))
    reg = Registry.from_environment(env={"TOKENSMITH_LOAD_PLUGINS": spelling})
    assert reg.get("tokenizer_stage", "fine")


@pytest.mark.parametrize("value,strict", [("False", False), ("0", False), ("no", False), ("", False),
                                          ("1", True), ("TRUE", True), ("yes", True)])
def test_13_strict_mode_values(fake_distributions, value, strict):
    fake_distributions("tokensmith-broken", "raise RuntimeError('boom')")
    env = only("tokensmith-broken", TOKENSMITH_STRICT_PLUGINS=value)
    if strict:
        with pytest.raises(PluginLoadError):
            Registry.from_environment(env=env)
    else:
        with pytest.warns(RuntimeWarning, match="boom"):
            Registry.from_environment(env=env)


# the simpler contract ------------------------------------------------------------------
def test_a_component_without_parameters_is_just_a_class(make_registry):
    class Always(Constraint):
        name = "always"

        def _allows(self, prefix):
            return True

    reg = registry_with(make_registry, ("tokensmith_register_constraints", [Component("always", Always)]))
    assert reg.build("constraint", "always").allows(b"x")
    with pytest.raises(ConfigError, match="unknown parameter 'strength'; accepted: none"):
        reg.build("constraint", {"type": "always", "strength": 1})


def test_the_context_goes_only_to_factories_that_ask(make_registry):
    seen = []

    def wants(ctx, limit: int = 1):
        seen.append(ctx)
        from tokensmith import FunctionConstraint

        return FunctionConstraint(lambda b: len(b) <= limit)

    reg = registry_with(make_registry, ("tokensmith_register_constraints", [Component("wants", wants)]))
    assert [p.name for p in reg.parameters(reg.get("constraint", "wants")).parameters] == ["limit"]
    reg.build("constraint", {"type": "wants", "limit": 2})
    assert seen and seen[0].registry is reg


def test_randomness_seed_reproduces_and_no_seed_advances(tiny_lm):
    pytest.importorskip("tokensmith_baselines")
    from tokensmith_baselines import SamplingDecoder

    decoder = SamplingDecoder(temperature=2.0)
    a = decoder.generate(tiny_lm, "The", max_new_tokens=8, seed=5)
    assert decoder.generate(tiny_lm, "The", max_new_tokens=8, seed=5).ids == a.ids
    first = decoder.generate(tiny_lm, "The", max_new_tokens=8)
    second = decoder.generate(tiny_lm, "The", max_new_tokens=8)
    assert first.ids != second.ids


_SAMPLE_SCRIPT = """
import json, sys
from tokensmith import PipelineSpec, Registry
reg = Registry.from_environment()
pipe = reg.build_pipeline(PipelineSpec(model="tiny-llama", decoder={"type": "sample", "temperature": 2.0},
                                       runtime={"device": "cpu", "seed": 7}))
print(json.dumps([list(pipe.generate("The", max_new_tokens=6, seed=s).ids) for s in (None, None, 3)]))
"""


def test_randomness_is_the_same_across_processes(tmp_path):
    pytest.importorskip("tokensmith_baselines")
    runs = [subprocess.run([sys.executable, "-c", _SAMPLE_SCRIPT], capture_output=True, text=True,
                           timeout=300, env={**__import__("os").environ, "PYTHONHASHSEED": str(h)},
                           cwd=tmp_path)
            for h in (1, 2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    a, b = (json.loads(r.stdout.strip().splitlines()[-1]) for r in runs)
    assert a == b  # same runtime seed: same sequence, in any process
    assert a[0] != a[1]  # no seed: the runtime generator advances


def test_every_installed_decoder_has_the_same_prologue_errors(installed_registry, tiny_lm):
    for record in installed_registry.components("decoder"):
        if any(p.required for p in installed_registry.parameters(record).parameters):
            continue
        decoder = installed_registry.build("decoder", f"{record.distribution}:{record.name}")
        for bad in (dict(prompt="", max_new_tokens=1), dict(prompt="x", max_new_tokens=-1),
                    dict(prompt=b"x", max_new_tokens=1)):
            prompt = bad.pop("prompt")
            with pytest.raises(InputError):
                decoder.generate(tiny_lm, prompt, **bad)
        if not installed_registry.accepts_constraint(record):
            from tokensmith import FunctionConstraint

            with pytest.raises(IncompatibleComponentsError):
                decoder.generate(tiny_lm, "x", max_new_tokens=1, constraint=FunctionConstraint(bool))


def test_a_check_across_parameters_runs_at_validation(make_registry):
    @attrs.define
    class Window(Constraint):
        name = "window"
        low: int = 0
        high: int = 10

        @staticmethod
        def check_parameters(values):
            if values["low"] > values["high"]:
                raise ValueError(f"low ({values['low']}) must not exceed high ({values['high']})")

        def _allows(self, prefix):
            return self.low <= len(prefix) <= self.high

    loads = Loads()
    reg = registry_with(make_registry, ("tokensmith_register_constraints", [Component("window", Window)]),
                        ("tokensmith_register_decoders", [Component("plain", Plain)]), loads=loads)
    spec = PipelineSpec(model="tiny-llama", decoder="plain", constraint={"type": "window", "low": 20},
                        runtime={"device": "cpu"})
    problems = reg.validate(spec)
    assert len(problems) == 1 and "low (20) must not exceed high (10)" in str(problems[0])
    assert problems[0].component == "constraint 'window'"
    with pytest.raises(ValidationError):
        reg.build_pipeline(spec)
    assert loads.loads == 0
    assert reg.build("constraint", {"type": "window", "low": 2}).allows(b"abc")
