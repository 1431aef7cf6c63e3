"""Config classes (attrs, validated; imported by plugin.py, so nothing heavy here).

An invalid pattern or schema fails here, when the pipeline is validated; the
registry turns the ValueError into a ConfigError naming the component.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from tokensmith import ConfigError


def _positive(instance, attribute, value):
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an int >= 1, got {value!r}")


def _unit(instance, attribute, value):
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be in [0, 1], got {value!r}")


def _pattern(instance, attribute, value):
    from .regex import compile_nfa

    try:
        compile_nfa(value)
    except ConfigError as exc:  # the registry adds the component's name
        raise ValueError(exc.message + (f" ({exc.hint})" if exc.hint else "")) from None


def _schema(instance, attribute, value):
    from .json_schema import JSONSchemaConstraint

    try:
        JSONSchemaConstraint(value)
    except ConfigError as exc:
        raise ValueError(exc.message) from None


def _schema_value(value: Any) -> Any:
    """TOML tables arrive as dicts; a JSON string is accepted too."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"schema is not valid JSON: {exc}") from None
    return value


@attrs.frozen
class DecoderConfig:
    #: 1: a single importance-weighted sample; more: SMC with resampling
    n_particles: int = attrs.field(default=1, validator=_positive)
    #: resample when ESS < ess_threshold * n_particles (the paper's example uses 0.5)
    ess_threshold: float = attrs.field(default=0.5, validator=_unit)


@attrs.frozen
class RegexConfig:
    pattern: str = attrs.field(validator=[attrs.validators.instance_of(str), _pattern])


@attrs.frozen
class JSONSchemaConfig:
    schema: Any = attrs.field(converter=_schema_value, validator=_schema)
