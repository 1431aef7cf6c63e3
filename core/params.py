"""Component parameters, declared once: the keyword parameters of a component's factory.

A component with parameters is an ``attrs`` class (its fields are the
parameters: annotation = type, default, validators, ``metadata={"doc": ...}``)
or a function / plain class whose keyword parameters are annotated
(``typing.Annotated[float, positive]`` attaches validators). A component with
no parameters is just a class. A parameter named ``ctx`` is not a parameter:
it receives the :class:`~tokensmith.core.pipeline.BuildContext`, for
factories that need the model or tokenizer.

Values are checked strictly against the annotation before any validator runs
(no string-to-bool coercion, floats finite, ``int`` is not ``bool``), and every
bad parameter is reported, not only the first.
"""

from __future__ import annotations

import collections.abc as cabc
import inspect
import math
import types
import typing
from pathlib import Path
from typing import Any

import attrs

#: the parameter through which a factory asks for the BuildContext
CONTEXT = "ctx"


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@attrs.frozen
class Parameter:
    """One declared parameter: its name, type annotation, default and validators.

    Validators are called attrs-style, ``validator(None, parameter, value)``, and
    raise ``ValueError``/``TypeError`` with a message; ``parameter.name`` names it.
    """

    name: str
    annotation: Any = Any
    default: Any = REQUIRED
    validators: tuple[Any, ...] = ()
    converter: Any = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def type_name(self) -> str:
        return type_name(self.annotation)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type_name, "required": self.required}
        if not self.required:
            out["default"] = _jsonable(self.default)
        if self.doc:
            out["doc"] = self.doc
        return out


@attrs.frozen
class Signature:
    """What a factory declares: its parameters, whether it takes the BuildContext, and an
    optional check across parameters (the factory's ``check_parameters``)."""

    parameters: tuple[Parameter, ...] = ()
    wants_context: bool = False
    check: Any = None

    def names(self) -> list[str]:
        return [p.name for p in self.parameters]


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, cabc.Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def type_name(annotation: Any) -> str:
    if annotation is Any or annotation is inspect.Parameter.empty:
        return "any"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{inner}]" if inner else name
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _split_annotated(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return base, tuple(v for v in extra if callable(v))
    return annotation, ()


def _validators(validator: Any) -> tuple[Any, ...]:
    if validator is None:
        return ()
    inner = getattr(validator, "_validators", None)  # attrs' and_() of a list of validators
    return tuple(inner) if inner is not None else (validator,)


def _hints(obj: Any) -> dict[str, Any]:
    """Resolved annotations; when one cannot be resolved (a name only imported under
    TYPE_CHECKING), the others still are, and that one alone checks nothing (``Any``)."""
    try:
        return typing.get_type_hints(obj, include_extras=True)
    except Exception:  # noqa: BLE001 - fall back to one annotation at a time
        pass
    import sys

    raw = dict(getattr(obj, "__annotations__", {}) or {})
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    namespace = dict(vars(module)) if module is not None else {}
    if inspect.isclass(obj):
        namespace.update(vars(obj))
    out: dict[str, Any] = {}
    for name, annotation in raw.items():
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)  # noqa: S307 - the plugin's own annotation
            except Exception:  # noqa: BLE001
                annotation = Any
        out[name] = annotation
    return out


def signature_of(factory: Any) -> Signature:
    """The parameters ``factory`` declares (see the module docstring)."""
    if inspect.isclass(factory) and attrs.has(factory):
        hints = _hints(factory)
        params, wants = [], False
        for field in attrs.fields(factory):
            if not field.init:
                continue
            name = field.alias or field.name.lstrip("_")
            if name == CONTEXT:
                wants = True
                continue
            annotation, extra = _split_annotated(hints.get(field.name, field.type or Any))
            default = field.default
            if default is attrs.NOTHING:
                default = REQUIRED
            elif isinstance(default, attrs.Factory):
                default = default.factory() if not default.takes_self else REQUIRED
            params.append(Parameter(name, annotation if not isinstance(annotation, str) else Any,
                                    default, _validators(field.validator) + extra, field.converter,
                                    str(field.metadata.get("doc", ""))))
        return Signature(tuple(params), wants, _cross_check(factory))
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return Signature()
    hints = _hints(target)
    params, wants = [], False
    for p in sig.parameters.values():
        if p.name == CONTEXT:
            wants = True
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation, extra = _split_annotated(hints.get(p.name, Any))
        default = REQUIRED if p.default is p.empty else p.default
        params.append(Parameter(p.name, annotation, default, extra))
    return Signature(tuple(params), wants, _cross_check(factory))


def _cross_check(factory: Any) -> Any:
    """A factory's ``check_parameters(values)`` (a classmethod or staticmethod on a class, an
    attribute of a function): called at validation with every parameter's value (defaults
    filled in) once each one passed on its own; it raises ``ValueError`` for a combination
    that cannot work (e.g. a pattern too large for the configured ``max_states``)."""
    check = getattr(factory, "check_parameters", None)
    return check if callable(check) else None


def check_type(value: Any, annotation: Any) -> tuple[bool, Any]:
    """``(ok, value)``: whether ``value`` has the annotated type, and the value to use
    (a TOML list becomes a tuple where a tuple is declared, an int a float, a str a Path)."""
    if annotation is Any or annotation is inspect.Parameter.empty or annotation is object:
        return True, value
    annotation, _ = _split_annotated(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            ok, converted = check_type(value, arg)
            if ok:
                return True, converted
        return False, value
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args), value
    if annotation is type(None) or annotation is None:
        return value is None, value
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, value
        return math.isfinite(value), float(value)
    if annotation is Path:
        if isinstance(value, (str, Path)) and str(value):
            return True, Path(value)
        return False, value
    if origin in (tuple, list, cabc.Sequence) or annotation in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False, value
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                return False, value
            item_types = list(args)
        else:
            item_types = [args[0] if args else Any] * len(value)
        out = []
        for item, item_type in zip(value, item_types, strict=True):
            ok, converted = check_type(item, item_type)
            if not ok:
                return False, value
            out.append(converted)
        return True, (list(out) if (origin or annotation) is list else tuple(out))
    if origin in (dict, cabc.Mapping) or annotation in (dict, cabc.Mapping):
        if not isinstance(value, cabc.Mapping):
            return False, value
        if args:
            for k, v in value.items():
                if not (check_type(k, args[0])[0] and check_type(v, args[1])[0]):
                    return False, value
        return True, dict(value)
    if inspect.isclass(annotation):
        return isinstance(value, annotation), value
    return True, value


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def check_parameters(signature: Signature, params: cabc.Mapping[str, Any]
                     ) -> tuple[dict[str, Any], list[str]]:
    """``(values, problems)``: the checked (converted) values of ``params`` and one message
    per problem: unknown names (with a did-you-mean), missing required parameters, values
    of the wrong type, values a validator refuses. All problems are found, not the first."""
    import difflib

    declared = {p.name: p for p in signature.parameters}
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key in params:
        if key not in declared:
            close = difflib.get_close_matches(str(key), list(declared), n=1)
            accepted = ", ".join(declared) or "none"
            problems.append(f"unknown parameter {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                            + f"; accepted: {accepted}")
    for name, param in declared.items():
        if name not in params:
            if param.required:
                problems.append(f"parameter {name!r} ({param.type_name}) is required")
            continue
        value = params[name]
        if param.converter is not None:
            try:
                value = param.converter(value)
            except (TypeError, ValueError) as exc:
                problems.append(f"parameter {name!r}: {exc}")
                continue
        ok, value = check_type(value, param.annotation)
        if not ok:
            finite = " (a finite number)" if isinstance(value, float) and not math.isfinite(value) else ""
            problems.append(f"parameter {name!r} must be {param.type_name}{finite}, got "
                            f"{_describe(params[name])}")
            continue
        bad = False
        for validator in param.validators:
            try:
                validator(None, param, value)
            except (TypeError, ValueError) as exc:
                message = getattr(exc, "message", None) or str(exc)  # a tokensmith error: its bare text
                problems.append(f"parameter {name!r}: {message}")
                bad = True
                break
        if not bad:
            values[name] = value
    if signature.check is not None and not problems:
        full = {p.name: values[p.name] if p.name in values else p.default for p in signature.parameters}
        try:
            signature.check(full)
        except (TypeError, ValueError) as exc:
            problems.append(getattr(exc, "message", None) or str(exc))
    return values, problems


def parameters_of(factory: Any) -> tuple[Parameter, ...]:
    """The parameters a factory declares (an attrs class's fields, a function's keyword
    parameters), e.g. to describe a model source with a config class's fields."""
    return signature_of(factory).parameters
