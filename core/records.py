"""Frozen data records shared by every interface."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

#: The component kinds a plugin can register, in the order pipelines use them.
KINDS: tuple[str, ...] = (
    "tokenizer",
    "tokenizer_stage",
    "tokenizer_trainer",
    "embedding",
    "normalization",
    "decoder",
    "constraint",
    "objective",
    "evaluation",
    "attribution",
    "architecture",
    "demo",
)

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
    """

    text: str
    bytes: bytes
    ids: tuple[int, ...] = attrs.field(converter=_tuple)
    log_weight: float = 0.0
    counters: Mapping[str, int] = attrs.field(factory=dict)
    finish_reason: str = "length"
    details: Mapping[str, Any] = attrs.field(factory=dict)


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

    ``factory`` builds the component: ``factory(config, context)`` where
    ``config`` is an instance of ``config_class`` (or a dict when that is
    ``None``) and ``context`` a :class:`~tokensmith.core.pipeline.BuildContext`.
    It may be a callable or a lazy ``"module:attribute"`` string so that
    registering a plugin imports nothing heavy.

    ``requires`` lists capabilities the component needs from the pipeline
    (``"byte_view"``, ``"causal_lm"``); ``accepts_constraint`` says whether a
    decoder can honour a constraint. ``kind``, ``plugin``, ``distribution`` and
    ``version`` are stamped by the registry.
    """

    name: str
    factory: Callable[..., Any] | str
    summary: str = ""
    config_class: type | None = None
    devices: tuple[str, ...] = attrs.field(default=ALL_DEVICES, converter=_tuple)
    dtypes: tuple[str, ...] = attrs.field(default=ALL_DTYPES, converter=_tuple)
    requires: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    accepts_constraint: bool = False
    kind: str = ""
    plugin: str = ""
    distribution: str = ""
    version: str = ""

    @property
    def qualname(self) -> str:
        return f"{self.kind} '{self.name}'"

    def resolve_factory(self) -> Callable[..., Any]:
        if callable(self.factory):
            return self.factory
        import importlib

        module, _, attr = self.factory.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


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
            params = {k: v for k, v in value.items() if k != "type"}
            return cls(str(value["type"]), params)
        raise ConfigError(f"cannot read a component from {value!r}",
                          hint="use a registered name or a table with a 'type' key")
