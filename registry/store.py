"""The component store: every registered component by kind and name, with provenance.

Registration hooks are called once, implementation by implementation, so each
record is stamped with the plugin and distribution that returned it, a bad
record or a hook that raises is reported with the plugin's name, and one
broken plugin never takes the others down. Two plugins may register the same
name: that is an error only where a pipeline uses the name unqualified
(``plugin:name`` or ``distribution:name`` picks one).

Every other hook (describe/load/wrap a model, configure, pipeline built) is also
called implementation by implementation, each isolated. After that, building
a pipeline calls no hook on a hot path: factories build plain objects.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any

import attrs
import pluggy

from tokensmith.core.constraint import AllOf, AnyOf
from tokensmith.core.errors import (
    ComponentCollisionError,
    ComponentError,
    ConfigError,
    IncompatibleComponentsError,
    ModelLoadError,
    TokensmithError,
    UnknownComponentError,
    ValidationError,
    attribute,
    blame,
)
from tokensmith.core.kinds import KIND_BY_NAME, KINDS, REQUIREMENTS
from tokensmith.core.language_model import LanguageModel
from tokensmith.core.params import Signature, check_parameters, signature_of
from tokensmith.core.pipeline import SLOTS, BuildContext, ModelSource, Pipeline, PipelineSpec
from tokensmith.core.records import (
    ALL_DEVICES,
    ALL_DTYPES,
    Component,
    ComponentRef,
    ConstraintSet,
    ModelInfo,
)
from tokensmith.core.runtime import Runtime
from tokensmith.spec.hookspecs import REGISTRATION_HOOKS

from .catalog import providers
from .discovery import PluginFailure, PluginInfo, canonical, make_plugin_manager, report

#: keys of a pipeline's [generate] table
GENERATE_KEYS = ("prompt", "max_new_tokens", "allow_special")


def _undecodable(spec: PipelineSpec, decoder: Component) -> IncompatibleComponentsError:
    return IncompatibleComponentsError(
        f"model {spec.model.source!r} is not a causal LM, so it cannot be decoded",
        component=decoder.qualname, plugin=decoder.distribution)


def _hint_parameters(record: Component) -> str:
    return f"`tokensmith components {record.kind}` lists the parameters of {record.name!r}"


class Registry:
    """All components that the plugins of one plugin manager provide."""

    def __init__(self, pm: pluggy.PluginManager, env: Mapping[str, str] | None = None) -> None:
        self.pm = pm
        self.env = os.environ if env is None else env
        if not hasattr(pm, "tokensmith_failed"):
            pm.tokensmith_failed = {}
        self._records: dict[str, dict[str, list[Component]]] = {k: {} for k in KINDS}
        self._factories: dict[int, tuple[Any, Signature]] = {}
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

    @property
    def failed(self) -> dict[str, PluginFailure]:
        """Plugins (or parts of plugins) that were skipped, with their error."""
        return dict(self.pm.tokensmith_failed)

    def hooks_of(self, plugin: str) -> list[str]:
        return self._hooks_by_plugin.get(plugin, [])

    def _info(self, impl: Any) -> PluginInfo:
        return self.pm.tokensmith_info.get(impl.plugin_name) or PluginInfo(
            impl.plugin_name, "(in-process)", "0", impl.plugin_name)

    def _failed(self, info: PluginInfo, stage: str, message: str, exc: BaseException | None = None,
                hint: str | None = None) -> None:
        report(self.pm, PluginFailure(info.name, info.distribution, info.version, stage, message),
               self.env, hint=hint or f"fix or uninstall {info.distribution}", cause=exc)

    def _collect(self) -> None:
        for name, plugin in self.pm.list_name_plugin():
            self._hooks_by_plugin[name] = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
        for hook_name, kind in REGISTRATION_HOOKS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                info = self._info(impl)
                try:
                    records = impl.function()
                    records = list(records) if records is not None else []
                except Exception as exc:  # noqa: BLE001 - report which plugin broke
                    self._failed(info, hook_name, f"{hook_name} of plugin {info.name!r} raised "
                                 f"{type(exc).__name__}: {exc}", exc)
                    continue
                for record in records:
                    problem = self._check_record(kind, record)
                    if problem:
                        self._failed(info, hook_name, f"{hook_name} of plugin {info.name!r}: {problem}; "
                                     "that record is skipped")
                        continue
                    record = attrs.evolve(record, kind=kind, plugin=info.name,
                                          distribution=info.distribution, version=info.version)
                    self._records[kind].setdefault(record.name, []).append(record)

    @staticmethod
    def _check_record(kind: str, record: Any) -> str | None:
        if not isinstance(record, Component):
            return f"returned {type(record).__name__} {record!r:.60}, not a tokensmith.Component record"
        if record.kind and record.kind != kind:
            return f"record {record.name!r} says kind {record.kind!r} but was returned for kind {kind!r}"
        if not isinstance(record.name, str) or not record.name or any(c in record.name for c in ": \t\n"):
            return f"component name {record.name!r} must be a non-empty string without ':' or spaces"
        if not (callable(record.factory) or isinstance(record.factory, str)):
            return f"{kind} {record.name!r}: factory {record.factory!r} is neither callable nor 'module:attr'"
        unknown = sorted(set(record.requires) - set(REQUIREMENTS))
        if unknown:
            return (f"{kind} {record.name!r} requires unknown capabilities {unknown}; known: "
                    + ", ".join(REQUIREMENTS))
        bad = sorted(set(record.devices) - set(ALL_DEVICES)) + sorted(set(record.dtypes) - set(ALL_DTYPES))
        if bad:
            return f"{kind} {record.name!r}: unknown devices/dtypes {bad}"
        return None

    # -- lookup -----------------------------------------------------------
    def _kind(self, kind: str) -> dict[str, list[Component]]:
        if kind not in self._records:
            raise ConfigError(f"unknown component kind {kind!r}", hint="kinds: " + ", ".join(KINDS))
        return self._records[kind]

    def components(self, kind: str | None = None) -> list[Component]:
        """Every record (of one kind), sorted by name; colliding names appear once per plugin."""
        kinds = [kind] if kind else list(KINDS)
        return [c for k in kinds for name in sorted(self._kind(k)) for c in self._kind(k)[name]]

    def collisions(self) -> list[tuple[str, str, list[Component]]]:
        """``(kind, name, records)`` for every name that more than one plugin registers."""
        return [(k, name, recs) for k in KINDS for name, recs in sorted(self._records[k].items())
                if len(recs) > 1]

    def get(self, kind: str, name: str) -> Component:
        """The record of ``kind`` ``name``; ``name`` may be qualified as ``plugin:name`` or
        ``distribution:name``."""
        byname = self._kind(kind)
        if not isinstance(name, str):
            raise ConfigError(f"a component name is a string, got {type(name).__name__} {name!r}",
                              component=kind)
        qualifier, _, base = name.rpartition(":")
        records = byname.get(base, [])
        if qualifier:
            picked = [r for r in records
                      if canonical(qualifier) in (canonical(r.plugin), canonical(r.distribution))]
            if len(picked) == 1:
                return picked[0]
            if records:
                raise UnknownComponentError(
                    f"no plugin or distribution {qualifier!r} provides {kind} {base!r}",
                    component=f"{kind} '{name}'",
                    hint="provided by: " + ", ".join(" or ".join(r.qualified_names) for r in records))
        elif len(records) == 1:
            return records[0]
        elif len(records) > 1:
            raise ComponentCollisionError(
                f"{kind} {base!r} is registered by several plugins: "
                + ", ".join(f"{r.distribution} (plugin {r.plugin})" for r in records),
                component=f"{kind} '{base}'",
                hint="pick one with a qualified name: " + ", ".join(repr(r.qualified_names[1])
                                                                   for r in records)
                + "; or uninstall one (TOKENSMITH_DISABLE_PLUGINS skips one)")
        raise self._unknown(kind, base if not qualifier else name)

    def _unknown(self, kind: str, name: str) -> UnknownComponentError:
        byname = self._records[kind]
        names = sorted(byname)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        elsewhere = [f"{k} '{name}'" for k in KINDS if k != kind and name in self._records[k]]
        hint = []
        if close:
            hint.append("did you mean " + " or ".join(
                f"'{n}' (from {byname[n][0].distribution})" for n in close) + "?")
        if elsewhere:
            hint.append(f"'{name}' exists as " + ", ".join(elsewhere))
        known = providers(kind, name)
        if known:
            hint.append(f"{kind} '{name}' is provided by " + " or ".join(known)
                        + f": pip install {known[0]}")
        hint.append(f"installed {kind}s: " + (", ".join(names) or "none"))
        return UnknownComponentError(f"no installed plugin provides {kind} {name!r}",
                                     component=f"{kind} '{name}'", hint="; ".join(hint))

    # -- factories and parameters -----------------------------------------
    def factory(self, record: Component) -> tuple[Any, Signature]:
        """The record's factory (a lazy string imported now) and the parameters it declares.
        A factory that cannot be loaded is a :class:`ComponentError` naming the plugin."""
        key = id(record)
        if key not in self._factories:
            factory = record.resolve_factory()
            with blame(record.qualname, record.distribution, "reading the factory's parameters"):
                self._factories[key] = (factory, signature_of(factory))
        return self._factories[key]

    def parameters(self, record: Component) -> Signature:
        return self.factory(record)[1]

    def accepts_constraint(self, record: Component) -> bool:
        """A decoder's class attribute ``accepts_constraint`` (False for other kinds)."""
        return bool(getattr(self.factory(record)[0], "accepts_constraint", False))

    def check_params(self, record: Component, params: Mapping[str, Any]
                     ) -> tuple[dict[str, Any], list[TokensmithError]]:
        """The checked parameter values, and one :class:`ConfigError` per problem."""
        if not isinstance(params, Mapping):
            return {}, [ConfigError(f"parameters must be a table, got {type(params).__name__}",
                                    component=record.qualname, plugin=record.distribution)]
        values, problems = check_parameters(self.parameters(record), params)
        return values, [ConfigError(p, component=record.qualname, plugin=record.distribution,
                                    hint=_hint_parameters(record)) for p in problems]

    def build(self, kind: str, ref: ComponentRef | ConstraintSet | str | Mapping[str, Any],
              context: BuildContext | None = None) -> Any:
        """Build one component by name (``ref`` as in a pipeline table). The built object
        is checked against the kind's interface; errors name the component and plugin."""
        if kind == "constraint" and not isinstance(ref, (str, ComponentRef)):
            from tokensmith.core.records import constraint_from_config

            ref = constraint_from_config(ref)
            if isinstance(ref, ConstraintSet):
                parts = [self.build("constraint", p, context) for p in ref.parts]
                return AllOf(*parts) if ref.mode == "all" else AnyOf(*parts)
        ref = ComponentRef.from_config(ref)
        record = self.get(kind, ref.type)
        context = context or BuildContext(runtime=Runtime(), registry=self)
        if context.registry is None:
            context.registry = self
        context.runtime.check_supported(record)
        factory, signature = self.factory(record)
        values, problems = self.check_params(record, ref.params)
        if problems:
            raise problems[0] if len(problems) == 1 else ValidationError(problems)
        if signature.wants_context:
            values["ctx"] = context
        with blame(record.qualname, record.distribution, "building it"):
            obj = factory(**values)
        spec = KIND_BY_NAME[kind]
        if not spec.conforms(obj):
            raise ComponentError(
                f"the factory returned {type(obj).__name__} {obj!r:.60}, which is not a "
                f"{spec.interface.__name__} (needs {', '.join(spec.members)})",
                component=record.qualname, plugin=record.distribution,
                hint=f"a bug in {record.distribution}: its factory must build a tokensmith."
                f"{spec.interface.__name__}")
        return obj

    # -- validation -------------------------------------------------------
    def _notify(self, hook: str, kwargs: dict[str, Any]) -> None:
        """Call every implementation of a hook whose results are not used, each isolated."""
        for _ in self._call_each(hook, kwargs):
            pass

    def _first_of(self, hook: str, kwargs: dict[str, Any], cls: type, what: str) -> Any:
        """The first result of a firstresult hook that is a ``cls``; other results are skipped
        with a warning naming the plugin."""
        for info, result in self._call_each(hook, kwargs, first=True):
            if isinstance(result, cls):
                return result
            self._failed(info, hook, f"{hook} of plugin {info.name!r} returned "
                         f"{type(result).__name__}, not {what}; skipped")
        return None

    def describe_model(self, source: ModelSource) -> ModelInfo | None:
        """What the first plugin that knows ``source`` says of it (``tokensmith_describe_model``)."""
        return self._first_of("tokensmith_describe_model", {"source": source}, ModelInfo, "a ModelInfo")

    def _check_model(self, spec: PipelineSpec) -> tuple[ModelInfo | None, list[TokensmithError]]:
        try:
            info = self.describe_model(spec.model)
        except TokensmithError as exc:
            return None, [exc]
        if info is None:
            return None, []
        _, problems = check_parameters(Signature(tuple(info.parameters)), spec.model.params)
        component = f"model {spec.model.source!r}"
        return info, [ConfigError(p, component=component, hint="the [model] table takes 'source' and: "
                                  + (", ".join(p.name for p in info.parameters) or "nothing else"))
                      for p in problems]

    def _check_generate(self, spec: PipelineSpec) -> list[TokensmithError]:
        problems: list[TokensmithError] = []
        table = spec.generate
        for key in sorted(set(table) - set(GENERATE_KEYS)):
            problems.append(ConfigError(f"unknown [generate] key {key!r}", component="pipeline",
                                        hint="allowed: " + ", ".join(GENERATE_KEYS)))
        n = table.get("max_new_tokens", 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            problems.append(ConfigError(f"[generate] max_new_tokens must be an int >= 0, got {n!r}",
                                        component="pipeline"))
        if not isinstance(table.get("prompt", ""), str):
            problems.append(ConfigError("[generate] prompt must be a string", component="pipeline"))
        if not isinstance(table.get("allow_special", False), bool):
            problems.append(ConfigError("[generate] allow_special must be true or false",
                                        component="pipeline"))
        return problems

    def validate(self, spec: PipelineSpec) -> list[TokensmithError]:
        """Every problem with ``spec``, found without loading anything heavy: the runtime, the
        model source's parameters and capabilities, unknown names, factories that cannot be
        loaded, bad parameters, unsupported devices/dtypes, incompatible components."""
        problems: list[TokensmithError] = list(Runtime.check_config(spec.runtime))
        runtime = Runtime.from_config(spec.runtime) if not problems else None
        info, model_problems = self._check_model(spec)
        problems += model_problems + self._check_generate(spec)
        records: dict[str, Component] = {}
        for slot, kind, ref in spec.refs():
            try:
                record = self.get(kind, ref.type)
                records.setdefault(slot, record)
                self.factory(record)
            except TokensmithError as exc:
                problems.append(exc)
                continue
            problems += self.check_params(record, ref.params)[1]
            if runtime is not None:
                try:
                    runtime.check_supported(record)
                except TokensmithError as exc:
                    problems.append(exc)
            if info is not None and info.provides is not None:
                problems += self._requirement_problems(record, spec, provides=info.provides)
        decoder = records.get("decoder")
        if spec.constraint is not None and spec.decoder is None:
            problems.append(IncompatibleComponentsError(
                "a constraint needs a decoder", component="pipeline",
                hint="add a [decoder] table naming a decoder that accepts constraints"))
        if decoder is not None and spec.constraint is not None and not self.accepts_constraint(decoder):
            problems.append(IncompatibleComponentsError(
                "cannot honour a constraint", component=decoder.qualname, plugin=decoder.distribution,
                hint="choose a decoder that accepts constraints (tokensmith components decoder)"))
        if decoder is not None and info is not None and info.provides is not None \
                and "causal_lm" not in info.provides:
            problems.append(_undecodable(spec, decoder))
        return problems

    def _requirement_problems(self, record: Component, spec: PipelineSpec, *, provides: Any = None,
                              tokenizer: Any = None, lm: Any = None, loaded: bool = False
                              ) -> list[TokensmithError]:
        problems: list[TokensmithError] = []
        if "byte_view" in record.requires:
            if loaded:
                missing = not tokenizer.has_byte_view
            else:  # the model's own tokenizer is described; a [tokenizer] is known only once built
                missing = spec.tokenizer is None and "byte_view" not in provides
            if missing:
                problems.append(IncompatibleComponentsError(
                    "needs a tokenizer with a byte view; "
                    + (f"tokenizer '{tokenizer.name}'" if loaded
                       else f"the tokenizer of {spec.model.source!r}")
                    + " has none", component=record.qualname, plugin=record.distribution))
        if "causal_lm" in record.requires and ((lm is None) if loaded else "causal_lm" not in provides):
            problems.append(IncompatibleComponentsError(
                f"needs a causal language model; {spec.model.source!r} is not one",
                component=record.qualname, plugin=record.distribution))
        return problems

    # -- hooks, one implementation at a time ----------------------------------
    def _call_each(self, hook: str, kwargs: dict[str, Any], *, first: bool = False,
                   component: str | None = None, failures: list | None = None):
        """Yield ``(plugin info, result)`` per implementation, in pluggy's call order. A
        tokensmith error propagates (it is the plugin's answer; ``component`` is named in
        it where the plugin did not); any other exception skips that implementation with a
        warning naming the distribution and hook (strict: error), and is appended to
        ``failures``. With ``first``, ``None`` results are not yielded."""
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            info = self._info(impl)
            try:
                result = impl.function(*[kwargs[name] for name in impl.argnames])
            except TokensmithError as exc:
                if component is not None:
                    attribute(exc, component, info.distribution)
                raise
            except Exception as exc:  # noqa: BLE001 - isolate the plugin
                if failures is not None:
                    failures.append((info, exc))
                self._failed(info, hook, f"{hook} of plugin {info.name!r} raised "
                             f"{type(exc).__name__}: {exc}; skipped", exc)
                continue
            if first and result is None:
                continue
            yield info, result

    def load_model(self, source: ModelSource, runtime: Runtime) -> tuple[Any, Any]:
        from tokensmith.core.tokenizer import Tokenizer

        failures: list = []
        component = f"model {source.source!r}"
        for info, result in self._call_each("tokensmith_load_model", {"source": source, "runtime": runtime},
                                            first=True, component=component, failures=failures):
            if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], Tokenizer):
                return result
            self._failed(info, "tokensmith_load_model",
                         f"tokensmith_load_model of plugin {info.name!r} returned {type(result).__name__}, "
                         "not (model, Tokenizer); skipped")
        if failures:
            info, exc = failures[0]
            raise ModelLoadError(f"loading failed: {info.distribution}'s tokensmith_load_model raised "
                                 f"{type(exc).__name__}: {exc}", component=component,
                                 plugin=info.distribution,
                                 hint="check the model files; --debug shows the traceback") from exc
        raise ModelLoadError(f"no plugin can load model source {source.source!r}",
                             component="model", hint="use 'smollm2', 'minilm', 'tiny-llama', "
                             "'tiny-gpt2', a transformers directory, or a .gguf/.safetensors file")

    def wrap_language_model(self, model: Any, tokenizer: Any, runtime: Runtime) -> LanguageModel | None:
        return self._first_of("tokensmith_wrap_language_model",
                              {"model": model, "tokenizer": tokenizer, "runtime": runtime},
                              LanguageModel, "a tokensmith.LanguageModel")

    # -- building ---------------------------------------------------------
    def build_pipeline(self, spec: PipelineSpec | Mapping[str, Any]) -> Pipeline:
        """Validate ``spec`` (all problems at once), then load and build everything."""
        if not isinstance(spec, PipelineSpec):
            spec = PipelineSpec.from_config(spec)
        problems = self.validate(spec)
        if problems:
            raise ValidationError(problems)
        runtime = Runtime.from_config(spec.runtime)
        runtime.apply()
        self._notify("tokensmith_configure", {"runtime": runtime})
        model, tokenizer = self.load_model(spec.model, runtime)
        ctx = BuildContext(runtime=runtime, model=model, tokenizer=tokenizer, model_tokenizer=tokenizer,
                           source=spec.model, registry=self)
        if spec.tokenizer is not None:  # the pipeline's tokenizer; ctx.model_tokenizer stays the model's
            ctx.tokenizer = self.build("tokenizer", spec.tokenizer, ctx)
        records = {slot: self.get(SLOTS[slot], ref.type) for slot, ref in spec.slots().items()
                   if isinstance(ref, ComponentRef)}
        self._check_requirements(spec, records, ctx)
        stages = tuple(self.build("tokenizer_stage", ref, ctx) for ref in spec.stages)
        reports = []
        normalization = embedding = None
        if spec.normalization is not None:
            normalization = self.build("normalization", spec.normalization, ctx)
            with blame(records["normalization"].qualname, records["normalization"].distribution, "surgery"):
                ctx.model, report = normalization.replace(ctx.model)
            reports.append(report)
        if spec.embedding is not None:
            embedding = self.build("embedding", spec.embedding, ctx)
            with blame(records["embedding"].qualname, records["embedding"].distribution, "installing"):
                reports.append(embedding.apply(ctx.model, ctx.tokenizer))
        ctx.lm = self.wrap_language_model(ctx.model, ctx.tokenizer, runtime)
        built: dict[str, Any] = {}
        for slot in ("decoder", "constraint", "objective", "evaluation"):
            ref = getattr(spec, slot)
            if ref is not None:
                built[slot] = self.build(SLOTS[slot], ref, ctx)
        if "decoder" in built and ctx.lm is None:
            raise ValidationError([_undecodable(spec, records["decoder"])])
        pipeline = Pipeline(spec=spec, runtime=runtime, model=ctx.model, tokenizer=ctx.tokenizer,
                            lm=ctx.lm, decoder=built.get("decoder"), embedding=embedding,
                            normalization=normalization, constraint=built.get("constraint"),
                            objective=built.get("objective"), evaluation=built.get("evaluation"),
                            stages=stages, reports=reports, components=records)
        self._notify("tokensmith_pipeline_built", {"pipeline": pipeline})
        return pipeline

    def _check_requirements(self, spec: PipelineSpec, records: dict[str, Component],
                            ctx: BuildContext) -> None:
        """Right after the model loads, before any component is built or surgery runs."""
        needs_lm = any("causal_lm" in r.requires for r in records.values()) or "decoder" in records
        lm = self.wrap_language_model(ctx.model, ctx.tokenizer, ctx.runtime) if needs_lm else None
        problems: list[TokensmithError] = []
        for record in records.values():
            problems += self._requirement_problems(record, spec, tokenizer=ctx.tokenizer, lm=lm, loaded=True)
        if "decoder" in records and lm is None:
            problems.append(_undecodable(spec, records["decoder"]))
        if problems:
            raise ValidationError(problems)

