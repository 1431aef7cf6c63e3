"""Every hook is documented (docs/hooks.md) and exercised here by a probe plugin whose
calls are recorded: each registration hook puts its records under its own kind, and every
other hook is called when a pipeline is validated and built."""

import re
from pathlib import Path

import pytest

from tokensmith import KIND_TABLE, Component, ModelInfo, Parameter, PipelineSpec, ValidationError, hookimpl
from tokensmith.spec.hookspecs import HOOKS, REGISTRATION_HOOKS

ROOT = Path(__file__).resolve().parents[1]


def _probe_object(kind):
    """An object with the kind's members (duck-typed conformance)."""
    members = {m: (lambda self, *a, **k: None) for m in kind.members if m != "vocab_size"}
    if "vocab_size" in kind.members:
        members["vocab_size"] = 1
    return type(f"Probe_{kind.name}", (), members)()


class EveryKind:
    pass


for _kind in KIND_TABLE:
    def _impl(kind=_kind):
        return [Component(f"probe-{kind.name}", lambda kind=kind: _probe_object(kind), f"a {kind.name}")]

    _impl.__name__ = _kind.hook
    setattr(EveryKind, _kind.hook, staticmethod(hookimpl(_impl)))


def test_every_registration_hook_registers_its_kind(make_registry):
    reg = make_registry(EveryKind())
    assert set(REGISTRATION_HOOKS.values()) == {k.name for k in KIND_TABLE}
    for kind in KIND_TABLE:
        record = reg.get(kind.name, f"probe-{kind.name}")
        assert record.kind == kind.name
        assert type(reg.build(kind.name, f"probe-{kind.name}")).__name__ == f"Probe_{kind.name}"


class Probe:
    """Implements every non-registration hook and records each call."""

    def __init__(self, tiny_gpt2):
        self.calls = []
        self.tiny = tiny_gpt2

    @hookimpl
    def tokensmith_describe_model(self, source):
        self.calls.append("tokensmith_describe_model")
        if source.source == "probe-model":
            return ModelInfo("probe-model", (Parameter("flavour", str, "plain"),), None)
        return None

    @hookimpl
    def tokensmith_load_model(self, source, runtime):
        self.calls.append("tokensmith_load_model")
        return self.tiny if source.source == "probe-model" else None

    @hookimpl
    def tokensmith_wrap_language_model(self, model, tokenizer, runtime):
        from tokensmith import HFCausalLM

        self.calls.append("tokensmith_wrap_language_model")
        return HFCausalLM(model, tokenizer, runtime, name="probe")

    @hookimpl
    def tokensmith_configure(self, runtime):
        self.calls.append("tokensmith_configure")

    @hookimpl
    def tokensmith_pipeline_built(self, pipeline):
        self.calls.append("tokensmith_pipeline_built")


def test_every_other_hook_is_called_when_a_pipeline_builds(make_registry, tiny_gpt2):
    probe = Probe(tiny_gpt2)
    reg = make_registry(probe)
    implemented = {c.name for c in reg.pm.get_hookcallers(probe)}
    assert implemented == set(HOOKS) - set(REGISTRATION_HOOKS)
    with pytest.raises(ValidationError, match="unknown parameter 'flavor'"):  # describe_model is used
        reg.build_pipeline(PipelineSpec(model={"source": "probe-model", "flavor": "x"},
                                        runtime={"device": "cpu"}))
    probe.calls.clear()
    pipe = reg.build_pipeline(PipelineSpec(model={"source": "probe-model", "flavour": "x"},
                                           runtime={"device": "cpu"}))
    assert pipe.model is tiny_gpt2[0] and pipe.lm.name == "probe"
    assert set(probe.calls) == implemented
    assert probe.calls.index("tokensmith_configure") < probe.calls.index("tokensmith_load_model") \
        < probe.calls.index("tokensmith_pipeline_built")


def test_every_hook_is_documented_with_an_anchor():
    text = (ROOT / "docs" / "hooks.md").read_text()
    for hook in HOOKS:
        assert re.search(rf"^### `{hook}`", text, re.M), f"{hook} is not documented in docs/hooks.md"
    documented = set(re.findall(r"^### `(tokensmith_\w+)`", text, re.M))
    assert documented == set(HOOKS), f"documented but not a hook: {documented - set(HOOKS)}"


def test_every_hook_has_a_docstring():
    from tokensmith.spec import hookspecs

    for hook in HOOKS:
        assert (getattr(hookspecs, hook).__doc__ or "").strip(), hook
