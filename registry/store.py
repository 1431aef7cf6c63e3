"""The component store: every registered component by kind and name, with provenance.

Registration hooks are called once, implementation by implementation, so each
record is stamped with the plugin and distribution that returned it and an
exception is reported with the plugin's name. After that, building a pipeline
calls no hook on a hot path: factories build plain objects.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Mapping
from typing import Any

import attrs
import pluggy

from tokensmith.core.errors import (
    ComponentCollisionError,
    ConfigError,
    IncompatibleComponentsError,
    ModelLoadError,
    PluginLoadError,
    TokensmithError,
    UnknownComponentError,
    ValidationError,
)
from tokensmith.core.pipeline import SLOTS, BuildContext, ModelSource, Pipeline, PipelineSpec
from tokensmith.core.records import KINDS, Component, ComponentRef
from tokensmith.core.runtime import Runtime
from tokensmith.spec.hookspecs import REGISTRATION_HOOKS

from .discovery import PluginInfo, make_plugin_manager


def _strict(env: Mapping[str, str]) -> bool:
    return env.get("TOKENSMITH_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


class Registry:
    """All components that the plugins of one plugin manager provide."""

    def __init__(self, pm: pluggy.PluginManager, env: Mapping[str, str] | None = None) -> None:
        self.pm = pm
        self.env = os.environ if env is None else env
        self._components: dict[str, dict[str, Component]] = {k: {} for k in KINDS}
        self._hooks_by_plugin: dict[str, list[str]] = {}
        self._collect()

    @classmethod
    def from_environment(cls, *, plugins=(), entry_points: bool = True,
                         env: Mapping[str, str] | None = None) -> Registry:
        """Discover installed plugins (entry points) plus ``plugins`` registered in-process."""
        return cls(make_plugin_manager(entry_points=entry_points, plugins=plugins, env=env), env=env)

    # -- collection -------------------------------------------------------
    @property
    def plugins(self) -> dict[str, PluginInfo]:
        return dict(self.pm.tokensmith_info)

    def hooks_of(self, plugin: str) -> list[str]:
        return self._hooks_by_plugin.get(plugin, [])

    def _collect(self) -> None:
        for name, plugin in self.pm.list_name_plugin():
            self._hooks_by_plugin[name] = sorted(
                h.name for h in self.pm.get_hookcallers(plugin) or [])
        for hook_name, kind in REGISTRATION_HOOKS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                info = self.pm.tokensmith_info.get(impl.plugin_name) or PluginInfo(
                    impl.plugin_name, "(in-process)", "0", impl.plugin_name)
                try:
                    records = impl.function() or []
                    for record in records:
                        self._add(kind, record, info)
                except ComponentCollisionError:
                    raise
                except Exception as exc:  # noqa: BLE001 - report which plugin broke
                    err = PluginLoadError(
                        f"{hook_name} of plugin {info.name!r} raised {type(exc).__name__}: {exc}",
                        plugin=info.distribution, hint=f"fix or uninstall {info.distribution}")
                    if _strict(self.env):
                        raise err from exc
                    warnings.warn(str(err), RuntimeWarning, stacklevel=2)

    def _add(self, kind: str, record: Component, info: PluginInfo) -> None:
        if not isinstance(record, Component):
            raise TypeError(f"expected tokensmith.Component records, got {type(record).__name__}")
        if record.kind and record.kind != kind:
            raise TypeError(f"record {record.name!r} says kind {record.kind!r} but was returned "
                            f"by the {kind} registration hook")
        record = attrs.evolve(record, kind=kind, plugin=info.name,
                              distribution=info.distribution, version=info.version)
        existing = self._components[kind].get(record.name)
        if existing is not None:
            raise ComponentCollisionError(
                f"{kind} {record.name!r} is registered twice: by {existing.distribution} "
                f"(plugin {existing.plugin}) and by {record.distribution} (plugin {record.plugin})",
                hint="uninstall one of them or disable one with TOKENSMITH_DISABLE_PLUGINS")
        self._components[kind][record.name] = record

    # -- lookup -----------------------------------------------------------
    def components(self, kind: str | None = None) -> list[Component]:
        kinds = [kind] if kind else list(KINDS)
        for k in kinds:
            if k not in self._components:
                raise ConfigError(f"unknown component kind {k!r}", hint="kinds: " + ", ".join(KINDS))
        return [c for k in kinds for c in sorted(self._components[k].values(), key=lambda c: c.name)]

    def get(self, kind: str, name: str) -> Component:
        if kind not in self._components:
            raise ConfigError(f"unknown component kind {kind!r}", hint="kinds: " + ", ".join(KINDS))
        record = self._components[kind].get(name)
        if record is not None:
            return record
        names = sorted(self._components[kind])
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        elsewhere = [f"{c.kind} '{c.name}'" for k, byname in self._components.items()
                     if k != kind for c in byname.values() if c.name == name]
        hint = []
        if close:
            hint.append("did you mean " + " or ".join(
                f"'{n}' (from {self._components[kind][n].distribution})" for n in close) + "?")
        if elsewhere:
            hint.append(f"'{name}' exists as " + ", ".join(elsewhere))
        hint.append(f"if a plugin provides it, install it (first-party plugins are named "
                    f"tokensmith-<technique>, e.g. pip install tokensmith-{name}); installed {kind}s: "
                    + (", ".join(names) or "none"))
        raise UnknownComponentError(f"no installed plugin provides {kind} {name!r}",
                                    component=f"{kind} '{name}'", hint="; ".join(hint))

    # -- building ---------------------------------------------------------
    def make_config(self, record: Component, params: Mapping[str, Any]) -> Any:
        """Instantiate the record's config class from ``params``; every problem is a ConfigError."""
        params = dict(params)
        cls = record.config_class
        if cls is None:
            if params:
                raise ConfigError(f"takes no parameters, got {sorted(params)}",
                                  component=record.qualname, plugin=record.distribution)
            return None
        if attrs.has(cls):
            fields = {f.alias or f.name.lstrip("_"): f for f in attrs.fields(cls) if f.init}
            unknown = sorted(set(params) - set(fields))
            if unknown:
                suggestions = {u: difflib.get_close_matches(u, list(fields), n=1) for u in unknown}
                hint = "; ".join(f"'{u}': did you mean '{s[0]}'?" for u, s in suggestions.items() if s)
                raise ConfigError(f"unknown parameter(s) {unknown}; accepted: {sorted(fields)}",
                                  component=record.qualname, plugin=record.distribution,
                                  hint=hint or None)
        try:
            return cls(**params)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad parameters {params}: {exc}", component=record.qualname,
                              plugin=record.distribution) from None

    def build(self, kind: str, ref: ComponentRef | str | Mapping[str, Any],
              context: BuildContext | None = None) -> Any:
        """Build one component by name (``ref`` as in a pipeline table)."""
        ref = ComponentRef.from_config(ref)
        record = self.get(kind, ref.type)
        context = context or BuildContext(runtime=Runtime())
        context.runtime.check_supported(record)
        config = self.make_config(record, ref.params)
        factory = record.resolve_factory()
        try:
            obj = factory(config, context)
        except TokensmithError as exc:
            if exc.component is None:
                exc.component, exc.plugin = record.qualname, record.distribution
            raise
        return obj

    def validate(self, spec: PipelineSpec) -> list[TokensmithError]:
        """Every problem with ``spec``, found without loading anything heavy."""
        problems: list[TokensmithError] = []
        try:
            runtime: Runtime | None = Runtime.from_config(spec.runtime)
        except TokensmithError as exc:
            problems.append(exc)
            runtime = None
        records: dict[str, Component] = {}
        refs = [(slot, SLOTS[slot], ref) for slot, ref in spec.slots().items()]
        refs += [("stages", "tokenizer_stage", ref) for ref in spec.stages]
        for slot, kind, ref in refs:
            try:
                record = self.get(kind, ref.type)
            except TokensmithError as exc:
                problems.append(exc)
                continue
            records.setdefault(slot, record)
            try:
                self.make_config(record, ref.params)
            except TokensmithError as exc:
                problems.append(exc)
            if runtime is not None:
                try:
                    runtime.check_supported(record)
                except TokensmithError as exc:
                    problems.append(exc)
        decoder = records.get("decoder")
        if spec.constraint is not None and spec.decoder is None:
            problems.append(IncompatibleComponentsError(
                f"constraint '{spec.constraint.type}' needs a decoder", component="pipeline",
                hint="add a [decoder] table naming a decoder that accepts constraints"))
        if decoder is not None and spec.constraint is not None and not decoder.accepts_constraint:
            problems.append(IncompatibleComponentsError(
                f"cannot honour constraint '{spec.constraint.type}'", component=decoder.qualname,
                plugin=decoder.distribution,
                hint="choose a decoder that accepts constraints (tokensmith components decoder)"))
        return problems

    def load_model(self, source: ModelSource, runtime: Runtime) -> tuple[Any, Any]:
        result = self.pm.hook.tokensmith_load_model(source=source, runtime=runtime)
        if result is None:
            raise ModelLoadError(f"no plugin can load model source {source.source!r}",
                                 component="model", hint="use 'smollm2', 'minilm', 'tiny-llama', "
                                 "'tiny-gpt2', a transformers directory, or a .gguf/.safetensors file")
        return result

    def build_pipeline(self, spec: PipelineSpec | Mapping[str, Any]) -> Pipeline:
        """Validate ``spec`` (all problems at once), then load and build everything."""
        if not isinstance(spec, PipelineSpec):
            spec = PipelineSpec.from_config(spec)
        problems = self.validate(spec)
        if problems:
            raise ValidationError(problems)
        runtime = Runtime.from_config(spec.runtime)
        runtime.apply()
        self.pm.hook.tokensmith_configure.call_historic(kwargs={"runtime": runtime})
        model, tokenizer = self.load_model(spec.model, runtime)
        ctx = BuildContext(runtime=runtime, model=model, tokenizer=tokenizer, source=spec.model)
        if spec.tokenizer is not None:
            ctx.tokenizer = self.build("tokenizer", spec.tokenizer, ctx)
        stages = tuple(self.build("tokenizer_stage", ref, ctx) for ref in spec.stages)
        reports = []
        normalization = embedding = None
        if spec.normalization is not None:
            normalization = self.build("normalization", spec.normalization, ctx)
            ctx.model, report = normalization.replace(ctx.model)
            reports.append(report)
        if spec.embedding is not None:
            embedding = self.build("embedding", spec.embedding, ctx)
            reports.append(embedding.apply(ctx.model, ctx.tokenizer))
        ctx.lm = self.pm.hook.tokensmith_wrap_language_model(model=ctx.model, tokenizer=ctx.tokenizer,
                                                             runtime=runtime)
        built: dict[str, Any] = {}
        for slot in ("decoder", "constraint", "objective", "evaluation"):
            ref = getattr(spec, slot)
            if ref is not None:
                built[slot] = self.build(SLOTS[slot], ref, ctx)
        self._check_built(spec, ctx, built)
        pipeline = Pipeline(spec=spec, runtime=runtime, model=ctx.model, tokenizer=ctx.tokenizer,
                            lm=ctx.lm, decoder=built.get("decoder"), embedding=embedding,
                            normalization=normalization, constraint=built.get("constraint"),
                            objective=built.get("objective"), evaluation=built.get("evaluation"),
                            stages=stages, reports=reports,
                            components={slot: self.get(SLOTS[slot], ref.type)
                                        for slot, ref in spec.slots().items()})
        self.pm.hook.tokensmith_pipeline_built(pipeline=pipeline)
        return pipeline

    def _check_built(self, spec: PipelineSpec, ctx: BuildContext, built: dict[str, Any]) -> None:
        problems: list[TokensmithError] = []
        for slot, ref in spec.slots().items():
            record = self.get(SLOTS[slot], ref.type)
            if "byte_view" in record.requires and not ctx.tokenizer.has_byte_view:
                problems.append(IncompatibleComponentsError(
                    f"needs a tokenizer with a byte view; tokenizer '{ctx.tokenizer.name}' has none",
                    component=record.qualname, plugin=record.distribution))
            if "causal_lm" in record.requires and ctx.lm is None:
                problems.append(IncompatibleComponentsError(
                    f"needs a causal language model; {spec.model.source!r} is not one",
                    component=record.qualname, plugin=record.distribution))
        if "decoder" in built and ctx.lm is None:
            problems.append(IncompatibleComponentsError(
                f"model {spec.model.source!r} is not a causal LM, so it cannot be decoded",
                component=f"decoder '{spec.decoder.type}'"))
        if problems:
            raise ValidationError(problems)
