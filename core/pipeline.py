"""Pipelines: a frozen spec (code or TOML) and the built Pipeline that runs it.

Resolving names into components is the registry's job
(:meth:`tokensmith.registry.Registry.build_pipeline`); a :class:`Pipeline`
holds components that are already built and runs plain Python/tensor code.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .constraint import Constraint
from .decoding import Decoder
from .errors import ConfigError, blame
from .kinds import KIND_TABLE
from .language_model import LanguageModel
from .records import ComponentRef, ConstraintSet, Generation, ModelReport, constraint_from_config
from .runtime import Runtime
from .tokenizer import Tokenizer, TrustedText, require_text

#: pipeline slots holding one registered component (``constraint`` may also hold a
#: :class:`ConstraintSet`), with the kind each takes; ``stages`` holds a list
SLOTS: dict[str, str] = {k.slot: k.name for k in KIND_TABLE if k.slot and k.slot != "stages"}


def _ref(value: Any) -> ComponentRef | None:
    return None if value is None else ComponentRef.from_config(value)


def _refs(values: Any) -> tuple[ComponentRef, ...]:
    if isinstance(values, (str, Mapping, ComponentRef)):
        values = [values]  # one stage given on its own, not a string split into letters
    return tuple(ComponentRef.from_config(v) for v in (values or ()))


def _constraint(value: Any) -> ComponentRef | ConstraintSet | None:
    return None if value is None else constraint_from_config(value)


@attrs.frozen
class ModelSource:
    """Where the model comes from: ``"smollm2"``, ``"minilm"``, ``"tiny-llama"``, a
    transformers directory, a ``.gguf`` or ``.safetensors`` file."""

    source: str
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=lambda d: dict(d))

    def to_config(self) -> dict[str, Any]:
        return {"source": self.source, **self.params}

    @classmethod
    def from_config(cls, value: Any) -> ModelSource:
        if isinstance(value, ModelSource):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping) and isinstance(value.get("source"), str) and value["source"]:
            return cls(value["source"], {k: v for k, v in value.items() if k != "source"})
        raise ConfigError(f"[model] needs a 'source', got {value!r}",
                          hint='e.g. [model] source = "smollm2"')


def parse_toml(text: str, what: str, *, example: str, component: str | None = None) -> dict[str, Any]:
    """TOML text (a ``what``: "pipeline", "recipe", a plugin's own file kind) as a dict; text
    that is not TOML or nests too deep is a ConfigError (``component``, default ``what``, is
    who reports it; ``example`` is where the hint points)."""
    where = component or what
    if not isinstance(text, str):
        raise ConfigError(f"a {what} must be TOML text (str), got {type(text).__name__}", component=where)
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise ConfigError("tables nested too deeply to read", component=where) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", component=where,
                          hint=f"a {what} file is UTF-8 TOML; see {example}") from None


def read_toml(path: str | Path, what: str, *, example: str, component: str | None = None) -> dict[str, Any]:
    """A ``what`` ("pipeline", "recipe", a plugin's own file kind) TOML file as a dict; anything
    that keeps it from being read — absent, a directory, not UTF-8, not TOML, nested too deep,
    unreadable — is a ConfigError naming the file (``component``, default ``what``, is who
    reports it; ``example`` is where the hint points)."""
    path = Path(path)
    where = component or what
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} file {str(path)!r} does not exist", component=where) from None
    except IsADirectoryError:
        raise ConfigError(f"{str(path)!r} is a directory, not a {what} TOML file", component=where) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc}", component=where) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8 ({exc})", component=where,
                          hint=f"a {what} file is UTF-8 TOML; see {example}") from None
    try:
        return parse_toml(text, what, example=example, component=where)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error.message}", component=where, hint=error.hint) from None


@attrs.frozen
class PipelineSpec:
    """Everything a pipeline is made of, by name. Vary it with ``attrs.evolve``.

    An empty slot keeps what the model came with: no ``tokenizer`` uses the
    model's own tokenizer, no ``embedding`` / ``normalization`` leaves the
    model's layers as they are, no ``decoder`` means the pipeline does not
    generate (encoders).
    """

    model: ModelSource = attrs.field(converter=ModelSource.from_config)
    tokenizer: ComponentRef | None = attrs.field(default=None, converter=_ref)
    stages: tuple[ComponentRef, ...] = attrs.field(default=(), converter=_refs)
    embedding: ComponentRef | None = attrs.field(default=None, converter=_ref)
    normalization: ComponentRef | None = attrs.field(default=None, converter=_ref)
    decoder: ComponentRef | None = attrs.field(default=None, converter=_ref)
    constraint: ComponentRef | ConstraintSet | None = attrs.field(default=None, converter=_constraint)
    objective: ComponentRef | None = attrs.field(default=None, converter=_ref)
    evaluation: ComponentRef | None = attrs.field(default=None, converter=_ref)
    runtime: Mapping[str, Any] = attrs.field(factory=lambda: {"device": "auto", "dtype": "auto"},
                                             converter=lambda d: dict(d))
    generate: Mapping[str, Any] = attrs.field(factory=dict, converter=lambda d: dict(d))

    def slots(self) -> dict[str, ComponentRef | ConstraintSet]:
        out = {slot: getattr(self, slot) for slot in SLOTS}
        return {k: v for k, v in out.items() if v is not None}

    def refs(self) -> list[tuple[str, str, ComponentRef]]:
        """Every component the spec names, as ``(slot, kind, ref)``: the slots, each stage,
        and each part of a combined constraint."""
        out: list[tuple[str, str, ComponentRef]] = []
        for slot, ref in self.slots().items():
            parts = ref.refs() if isinstance(ref, ConstraintSet) else [ref]
            out += [(slot, SLOTS[slot], part) for part in parts]
        out += [("stages", "tokenizer_stage", ref) for ref in self.stages]
        return out

    def to_config(self) -> dict[str, Any]:
        """A plain dict (TOML-ready); ``PipelineSpec.from_config(spec.to_config()) == spec``."""
        out: dict[str, Any] = {"runtime": dict(self.runtime), "model": self.model.to_config()}
        tokenizer = self.tokenizer.to_config() if self.tokenizer is not None else {}
        if self.stages:
            tokenizer["stages"] = [s.to_config() for s in self.stages]
        if tokenizer:
            out["tokenizer"] = tokenizer
        for slot, ref in self.slots().items():
            if slot != "tokenizer":
                out[slot] = ref.to_config()
        if self.generate:
            out["generate"] = dict(self.generate)
        return out

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PipelineSpec:
        if not isinstance(config, Mapping):
            raise ConfigError(f"a pipeline is a table, got {type(config).__name__}", component="pipeline")
        config = dict(config)
        allowed = {"runtime", "model", "generate", *SLOTS}
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ConfigError(f"unknown pipeline tables {unknown}",
                              hint="allowed tables: " + ", ".join(sorted(allowed)))
        if "model" not in config:
            raise ConfigError("the pipeline has no [model] table", hint='add [model] source = "smollm2"')
        for table in ("runtime", "generate"):
            if table in config and not isinstance(config[table], Mapping):
                raise ConfigError(f"[{table}] must be a table, got {type(config[table]).__name__}",
                                  component="pipeline")
        kwargs: dict[str, Any] = {k: v for k, v in config.items() if k in allowed}
        tok = kwargs.get("tokenizer")
        if isinstance(tok, Mapping) and "stages" in tok:
            tok = dict(tok)
            kwargs["stages"] = tok.pop("stages")
            kwargs["tokenizer"] = tok or None
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | Path) -> PipelineSpec:
        return cls.from_config(read_toml(path, "pipeline", example="examples/*.toml"))

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_config())


@attrs.define
class BuildContext:
    """What a factory that asks for it (a parameter named ``ctx``) may use: the runtime,
    whatever is already built, and the registry (to build other components by name,
    e.g. a demo comparing against the ``greedy`` baseline).

    ``tokenizer`` is the pipeline's tokenizer (the ``[tokenizer]`` once it is built);
    ``model_tokenizer`` is the one the model was loaded with, the vocabulary its embedding
    rows belong to, so an embedding provider can transplant from it (docs/transplant.md).
    Without a ``[tokenizer]`` both are the same object."""

    runtime: Runtime
    model: Any = None
    tokenizer: Tokenizer | None = None
    model_tokenizer: Tokenizer | None = None
    lm: LanguageModel | None = None
    source: ModelSource | None = None
    registry: Any = None


@attrs.define
class Pipeline:
    """Built components, ready to run. Made by ``Registry.build_pipeline``."""

    spec: PipelineSpec
    runtime: Runtime
    model: Any
    tokenizer: Tokenizer
    lm: LanguageModel | None
    decoder: Decoder | None
    embedding: Any = None
    normalization: Any = None
    constraint: Constraint | None = None
    objective: Any = None
    evaluation: Any = None
    stages: tuple[Any, ...] = ()
    reports: list[ModelReport] = attrs.field(factory=list)
    components: dict[str, Any] = attrs.field(factory=dict)

    def prepare(self, text: str) -> str:
        """``text`` after the tokenizer stages (a :class:`~tokensmith.TrustedText` stays one)."""
        require_text(text, "pipeline")
        trusted = isinstance(text, TrustedText)
        for stage in self.stages:
            text = stage.normalize(text)
        return TrustedText(text) if trusted else text

    def generate(self, prompt: str, *, max_new_tokens: int | None = None,
                 seed: int | None = None) -> Generation:
        """Run the decoder on ``prompt`` (after the tokenizer stages)."""
        if self.decoder is None or self.lm is None:
            raise ConfigError("this pipeline has no decoder/causal LM", component="pipeline",
                              hint="set [decoder] and use a causal LM source")
        if max_new_tokens is None:
            max_new_tokens = self.spec.generate.get("max_new_tokens", 32)
        if self.constraint is not None:
            self.constraint.reset_counters()
        record = self.components.get("decoder")
        component = record.qualname if record is not None else f"decoder '{self.decoder.name}'"
        plugin = record.distribution if record is not None else None
        # seed None: the decoder draws from the runtime's generator, which advances per call
        with blame(component, plugin, "generate"):
            return self.decoder.generate(self.lm, self.prepare(prompt), max_new_tokens=max_new_tokens,
                                         constraint=self.constraint, seed=seed)

    def to_config(self) -> dict[str, Any]:
        return self.spec.to_config()
