"""Validators for component parameters, attrs-style: ``validator(instance, attribute, value)``.

Use them on attrs fields (``attrs.field(default=1.0, validator=positive)``) or in
``typing.Annotated[float, positive]``. The registry checks a value's type against its
annotation before validators run; they also refuse a wrong type themselves, and raise typed
errors — :class:`ConfigError` (a ``ValueError``) and :class:`ParameterTypeError` (also a
``TypeError``) — so a component built directly in Python gets the same typed message.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError, ParameterTypeError


def _number(attribute: Any, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterTypeError(f"{attribute.name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{attribute.name} must be finite, got {value}")
    return value


def positive(instance: Any, attribute: Any, value: Any) -> None:
    """``value > 0``."""
    if _number(attribute, value) <= 0:
        raise ConfigError(f"{attribute.name} must be > 0, got {value}")


def non_negative(instance: Any, attribute: Any, value: Any) -> None:
    """``value >= 0``."""
    if _number(attribute, value) < 0:
        raise ConfigError(f"{attribute.name} must be >= 0, got {value}")


def probability(instance: Any, attribute: Any, value: Any) -> None:
    """``0 < value <= 1`` (a probability mass such as top-p)."""
    if not 0 < _number(attribute, value) <= 1:
        raise ConfigError(f"{attribute.name} must be in (0, 1], got {value}")


def unit_interval(instance: Any, attribute: Any, value: Any) -> None:
    """``0 <= value <= 1``."""
    if not 0 <= _number(attribute, value) <= 1:
        raise ConfigError(f"{attribute.name} must be in [0, 1], got {value}")


def positive_int(instance: Any, attribute: Any, value: Any) -> None:
    """An ``int`` (not a ``bool``) ``>= 1``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterTypeError(f"{attribute.name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ConfigError(f"{attribute.name} must be >= 1, got {value}")


def non_negative_int(instance: Any, attribute: Any, value: Any) -> None:
    """An ``int`` (not a ``bool``) ``>= 0``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterTypeError(f"{attribute.name} must be an int, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ConfigError(f"{attribute.name} must be >= 0, got {value}")
