"""Frozen data records shared by every interface."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

ALL_DEVICES: tuple[str, ...] = ("cpu", "cuda", "mps")
ALL_DTYPES: tuple[str, ...] = ("float32", "float64", "float16", "bfloat16")


def _tuple(value: Any) -> tuple:
    return tuple(value)


@attrs.frozen
class Encoding:
    """Token ids of a text with the character span ``(start, end)`` of each token."""

    ids: tuple[int, ...] = attrs.field(converter=_tuple)
    offsets: tuple[tuple[int, int], ...] = attrs.field(converter=_tuple)

    def __len__(self) -> int:
        return len(self.ids)


@attrs.frozen
class PreToken:
    """A pre-tokenization unit (word / pretoken) with its character span."""

    text: str
    span: tuple[int, int]


@attrs.frozen
class Generation:
    """What a decoder returns.

    ``log_weight`` is the log importance weight of the sample (0.0 for plain
    decoding); ``counters`` holds e.g. ``lm_calls`` and ``constraint_checks``;
    ``details`` holds what a decoder computes beyond one string (e.g. an SMC
    decoder's weighted posterior).

    ``finish_reason`` says why the string ended: ``"stop"`` (an end-of-sequence
    token), ``"length"`` (the token budget or the context window: the string is a
    truncated prefix) or ``"rejected"`` (a weighted decoder found no continuation the
    constraint allows: weight 0). A weighted decoder's truncated sample is not a
    weighted sample of finished strings, so its ``log_weight`` is ``-inf`` like a
    rejected one's; ``prefix_log_weight`` then keeps the weight it had so far (it
    covers the prefix constraint only), so the two cases stay apart. It is ``None``
    for finished, rejected and unweighted samples.
    """

    text: str
    bytes: bytes
    ids: tuple[int, ...] = attrs.field(converter=_tuple)
    log_weight: float = 0.0
    counters: Mapping[str, int] = attrs.field(factory=dict)
    finish_reason: str = "length"
    details: Mapping[str, Any] = attrs.field(factory=dict)
    prefix_log_weight: float | None = None

    @property
    def truncated(self) -> bool:
        """Did the string stop at the length limit (a prefix, not a finished string)?"""
        return self.finish_reason == "length"

    @property
    def rejected(self) -> bool:
        """Did the constraint allow no continuation (weight 0)?"""
        return self.finish_reason == "rejected"


@attrs.frozen
class Change:
    """One module changed by surgery: where, what it was, what it became."""

    path: str
    before: str
    after: str
    detail: str = ""


@attrs.frozen
class ModelReport:
    """Every change a component made to a model."""

    component: str
    changes: tuple[Change, ...] = attrs.field(converter=_tuple, factory=tuple)
    notes: tuple[str, ...] = attrs.field(converter=_tuple, factory=tuple)

    def __len__(self) -> int:
        return len(self.changes)

    def render(self) -> str:
        lines = [f"{self.component}: {len(self.changes)} change(s)"]
        lines += [f"  {c.path}: {c.before} -> {c.after}" + (f" ({c.detail})" if c.detail else "")
                  for c in self.changes]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


@attrs.frozen
class Component:
    """A declarative registration record, returned by a ``tokensmith_register_*`` hook.

    ``factory`` builds the component: a class or a function, or a lazy
    ``"module:attribute"`` string so that registering a plugin imports nothing
    heavy (the registry resolves it when a pipeline is validated, before any
    model loads). Its parameters are declared once, by the factory itself
    (:mod:`tokensmith.core.params`): the fields of an attrs class, or the
    annotated keyword parameters of a function or class; a parameter named
    ``ctx`` receives the :class:`~tokensmith.core.pipeline.BuildContext`.

    ``requires`` lists capabilities the component needs from the pipeline
    (names in :data:`tokensmith.core.kinds.REQUIREMENTS`: ``"byte_view"``,
    ``"causal_lm"``). Whether a decoder honours constraints is its class
    attribute ``accepts_constraint``. ``kind``, ``plugin``, ``distribution``
    and ``version`` are stamped by the registry.
    """

    name: str
    factory: Callable[..., Any] | str
    summary: str = ""
    devices: tuple[str, ...] = attrs.field(default=ALL_DEVICES, converter=_tuple)
    dtypes: tuple[str, ...] = attrs.field(default=ALL_DTYPES, converter=_tuple)
    requires: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    kind: str = ""
    plugin: str = ""
    distribution: str = ""
    version: str = ""

    @property
    def qualname(self) -> str:
        return f"{self.kind} '{self.name}'"

    @property
    def qualified_names(self) -> tuple[str, str]:
        """The two names that pick this record when another plugin registers the same name."""
        return f"{self.plugin}:{self.name}", f"{self.distribution}:{self.name}"

    def resolve_factory(self) -> Callable[..., Any]:
        """The factory itself; a lazy string is imported. Any failure is a ComponentError."""
        from .errors import ComponentError

        if callable(self.factory):
            return self.factory
        if not isinstance(self.factory, str) or self.factory.count(":") != 1:
            raise ComponentError(f"factory {self.factory!r} is neither callable nor 'module:attribute'",
                                 component=self.qualname, plugin=self.distribution or None,
                                 hint=f"fix the Component record in {self.distribution or 'the plugin'}")
        import importlib

        module, _, attr = self.factory.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # noqa: BLE001 - ImportError, AttributeError, or the module's own
            raise ComponentError(
                f"factory {self.factory!r} cannot be loaded: {type(exc).__name__}: {exc}",
                component=self.qualname, plugin=self.distribution or None,
                hint=f"a bug or a broken install of {self.distribution or 'the plugin'}: "
                "reinstall it, or fix the factory path in its Component record") from exc
        if not callable(obj):
            raise ComponentError(f"factory {self.factory!r} is a {type(obj).__name__}, not callable",
                                 component=self.qualname, plugin=self.distribution or None)
        return obj


@attrs.frozen
class ModelInfo:
    """What a model source accepts and provides, known before it loads
    (returned by ``tokensmith_describe_model``).

    ``parameters`` are the ``[model]`` table's keys other than ``source``
    (:class:`~tokensmith.core.params.Parameter`); ``provides`` the capabilities
    (``"causal_lm"``, ``"byte_view"``) of the model and its own tokenizer, or
    ``None`` when only loading can tell.
    """

    name: str
    parameters: tuple[Any, ...] = attrs.field(default=(), converter=_tuple)
    provides: frozenset[str] | None = None


@attrs.frozen
class ComponentRef:
    """A component chosen by name, with its parameters (one table of a pipeline TOML)."""

    type: str
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=lambda d: dict(d))

    def to_config(self) -> dict[str, Any]:
        return {"type": self.type, **self.params}

    @classmethod
    def from_config(cls, value: ComponentRef | str | Mapping[str, Any]) -> ComponentRef:
        from .errors import ConfigError

        if isinstance(value, ComponentRef):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping):
            if "type" not in value:
                raise ConfigError(f"component table {dict(value)!r} has no 'type' key",
                                  hint='add type = "<registered name>"')
            if not isinstance(value["type"], str) or not value["type"]:
                raise ConfigError(f"component 'type' must be a registered name (a string), got "
                                  f"{value['type']!r}", hint='type = "<registered name>"')
            params = {k: v for k, v in value.items() if k != "type"}
            return cls(value["type"], params)
        raise ConfigError(f"cannot read a component from {value!r}",
                          hint="use a registered name or a table with a 'type' key")


def constraint_from_config(value: Any) -> ComponentRef | ConstraintSet:
    """A constraint table: a component (``{type = ...}``), a list (all of them), or
    ``{all = [...]}`` / ``{any = [...]}``, nested as needed."""
    from .errors import ConfigError

    if isinstance(value, (ComponentRef, ConstraintSet)):
        return value
    if isinstance(value, (list, tuple)):
        return ConstraintSet("all", tuple(constraint_from_config(v) for v in value))
    if isinstance(value, Mapping) and "type" not in value and len(value) == 1 \
            and next(iter(value)) in ("all", "any"):
        mode, parts = next(iter(value.items()))
        if not isinstance(parts, (list, tuple)) or not parts:
            raise ConfigError(f"constraint '{mode}' needs a non-empty list of constraints, got {parts!r}",
                              component="pipeline", hint=f'[constraint] {mode} = [{{type = "..."}}, ...]')
        return ConstraintSet(mode, tuple(constraint_from_config(v) for v in parts))
    return ComponentRef.from_config(value)


@attrs.frozen
class ConstraintSet:
    """Constraints combined: ``mode`` ``"all"`` (intersection) or ``"any"`` (union)."""

    mode: str = attrs.field(validator=attrs.validators.in_(("all", "any")))
    parts: tuple[ComponentRef | ConstraintSet, ...] = attrs.field(converter=_tuple)

    def refs(self) -> list[ComponentRef]:
        out: list[ComponentRef] = []
        for part in self.parts:
            out.extend(part.refs() if isinstance(part, ConstraintSet) else [part])
        return out

    def to_config(self) -> dict[str, Any]:
        return {self.mode: [p.to_config() for p in self.parts]}
