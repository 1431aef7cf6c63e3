"""Every hook is documented (docs/hooks.md) and exercised here; each registration hook
puts its records under its own kind."""

import re
from pathlib import Path

import pytest

from tokensmith import Component, PipelineSpec, hookimpl
from tokensmith.spec.hookspecs import HOOKS, REGISTRATION_HOOKS

ROOT = Path(__file__).resolve().parents[1]


class EveryKind:
    pass


for _hook, _kind in REGISTRATION_HOOKS.items():
    def _impl(kind=_kind):
        return [Component(f"probe-{kind}", lambda config, ctx: kind, f"a {kind}")]

    _impl.__name__ = _hook
    setattr(EveryKind, _hook, staticmethod(hookimpl(_impl)))


def test_every_registration_hook_registers_its_kind(make_registry):
    reg = make_registry(EveryKind())
    for hook, kind in REGISTRATION_HOOKS.items():
        record = reg.get(kind, f"probe-{kind}")
        assert record.kind == kind, hook
        assert reg.build(kind, f"probe-{kind}") == kind


@pytest.mark.needs_baselines
def test_tokensmith_configure_and_pipeline_built_are_called(installed_registry):
    calls = []

    class Watch:
        @hookimpl
        def tokensmith_configure(self, runtime):
            calls.append(("configure", runtime.device))

        @hookimpl
        def tokensmith_pipeline_built(self, pipeline):
            calls.append(("built", pipeline.spec.model.source))

    installed_registry.pm.register(Watch())
    installed_registry.build_pipeline(PipelineSpec(model="tiny-llama", runtime={"device": "cpu"}))
    assert calls == [("configure", "cpu"), ("built", "tiny-llama")]


def test_every_hook_is_documented_with_an_anchor():
    text = (ROOT / "docs" / "hooks.md").read_text()
    for hook in HOOKS:
        assert re.search(rf"^### `{hook}`", text, re.M), f"{hook} is not documented in docs/hooks.md"
    documented = set(re.findall(r"^### `(tokensmith_\w+)`", text, re.M))
    assert documented == set(HOOKS), f"documented but not a hook: {documented - set(HOOKS)}"


def test_every_hook_is_tested():
    """Registration hooks are all exercised by EveryKind above; any other hook must be
    implemented by a test plugin somewhere in tests/ (this file aside)."""
    here = Path(__file__).resolve()
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p != here)
    assert set(REGISTRATION_HOOKS) == {h for h in HOOKS if h.startswith("tokensmith_register_")}
    for hook in set(HOOKS) - set(REGISTRATION_HOOKS):
        assert f"def {hook}(" in sources, f"{hook} is not exercised by any test in tests/"


def test_every_hook_has_a_docstring():
    from tokensmith.spec import hookspecs

    for hook in HOOKS:
        assert (getattr(hookspecs, hook).__doc__ or "").strip(), hook
