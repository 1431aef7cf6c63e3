"""One record for what evaluations, demo sections and benchmarks measure: :class:`Report`.

A report holds metrics (name -> number), tables, series to plot, notes and the
:class:`Provenance` of the run (plugin versions, model, runtime, seed, time, command).
It is validated when built, so every renderer (JSON, Markdown, terminal, PNG: see
``tokensmith.adapters.report``) can trust it:

- every number is finite: NaN and infinities are refused (:class:`InputError`), so the
  JSON is strict JSON that any reader parses; a missing table cell is ``None``, and a
  value that could not be measured is left out and said why in ``notes``;
- numbers are Python ``int``/``float`` (numpy scalars are converted; ``bool`` is refused);
- every string can be written as UTF-8 (no lone surrogates);
- ``name`` is a safe file stem (letters, digits, ``.``, ``_``, ``-``, ``+``; no ``..``),
  because renderers write ``<name>.json``/``.md``/``.png``.

``Report.from_json(report.to_json()) == report`` for every valid report. This module
imports only the standard library and attrs.
"""

from __future__ import annotations

import json
import math
import numbers
import platform
import re
import shlex
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import attrs

from .errors import ArtifactVersionError, InputError

#: version of the JSON layout written by :meth:`Report.to_json`
REPORT_FORMAT = 1
#: how a series is drawn
PLOTS: tuple[str, ...] = ("line", "scatter", "bar", "step")
_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_ENTRY_POINT_GROUP = "tokensmith"  # registry.discovery.ENTRY_POINT_GROUP; core does not import registry
_PACKAGES = ("torch", "transformers", "tokenizers")

Cell = str | int | float | None


def _set(obj: Any, field: str, value: Any) -> None:
    object.__setattr__(obj, field, value)  # normalising a frozen record in __attrs_post_init__


def _text(value: Any, what: str, component: str, *, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise InputError(f"{what} must be a string, got {type(value).__name__} {value!r:.60}",
                         component=component)
    if not empty and not value:
        raise InputError(f"{what} must not be empty", component=component)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{what} {value!r:.60} cannot be written as UTF-8 (a lone surrogate)",
                         component=component) from None
    return value


def _number(value: Any, what: str, component: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{what} must be a number (int or float), got {type(value).__name__} {value!r:.60}",
                         component=component)
    value = int(value) if isinstance(value, numbers.Integral) else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{what} is {value!r}: a report holds finite numbers only", component=component,
                         hint="leave the value out and say why in notes (a missing table cell is None)")
    return value


def _sequence(value: Any, what: str, component: str) -> tuple:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise InputError(f"{what} must be a sequence, got {type(value).__name__} {value!r:.60}",
                         component=component)
    return tuple(value)


def _json_value(value: Any, what: str, component: str) -> Any:
    """``value`` as JSON gives it back (tuples become lists, keys strings), so that a
    record and its JSON round trip compare equal."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must hold JSON values (strings, finite numbers, booleans, None, "
                         f"lists, mappings): {exc}", component=component) from None
    return json.loads(text)


def _mapping(value: Any, what: str, component: str) -> dict:
    if not isinstance(value, Mapping):
        raise InputError(f"{what} must be a mapping, got {type(value).__name__} {value!r:.60}",
                         component=component)
    return dict(value)


@attrs.frozen
class Table:
    """A titled table: ``columns`` names, ``rows`` of cells (``str``, ``int``, ``float`` or
    ``None`` for a missing value), each row as wide as ``columns``."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...] = ()

    def __attrs_post_init__(self) -> None:
        title = _text(self.title, "a table's title", "report table")
        where = f"report table {title!r}"
        columns = tuple(_text(c, "a column name", where)
                        for c in _sequence(self.columns, "columns", where))
        if not columns:
            raise InputError("a table needs at least one column", component=where)
        rows = []
        for i, row in enumerate(_sequence(self.rows, "rows", where)):
            row = _sequence(row, f"row {i}", where)
            if len(row) != len(columns):
                raise InputError(f"row {i} has {len(row)} cells but the table has {len(columns)} columns "
                                 f"{list(columns)}", component=where)
            rows.append(tuple(_cell(v, f"row {i}, column {columns[j]!r}", where) for j, v in enumerate(row)))
        _set(self, "columns", columns)
        _set(self, "rows", tuple(rows))


def _cell(value: Any, what: str, component: str) -> Cell:
    if value is None:
        return None
    if isinstance(value, str):
        return _text(value, what, component)
    return _number(value, what, component)


@attrs.frozen
class Series:
    """Points to plot: ``y`` against ``x`` (numbers, or strings for categories, e.g. one bar
    per method). Series with the same ``group`` share one subplot; a series with no group
    has a subplot of its own. ``plot`` is one of :data:`PLOTS`."""

    name: str
    x: tuple[float, ...] | tuple[str, ...]
    y: tuple[float, ...]
    x_label: str = ""
    y_label: str = ""
    plot: str = "line"
    group: str = ""
    log_x: bool = False
    log_y: bool = False

    def __attrs_post_init__(self) -> None:
        name = _text(self.name, "a series' name", "report series", empty=False)
        where = f"report series {name!r}"
        for field in ("x_label", "y_label", "group"):
            _text(getattr(self, field), field, where)
        if self.plot not in PLOTS:
            raise InputError(f"plot {self.plot!r} is not one of {', '.join(PLOTS)}", component=where)
        for field in ("log_x", "log_y"):
            if not isinstance(getattr(self, field), bool):
                raise InputError(f"{field} must be True or False, got {getattr(self, field)!r:.60}",
                                 component=where)
        x = _sequence(self.x, "x", where)
        y = tuple(_number(v, f"y[{i}]", where) * 1.0 for i, v in enumerate(_sequence(self.y, "y", where)))
        if len(x) != len(y):
            raise InputError(f"x has {len(x)} values but y has {len(y)}", component=where)
        if not y:
            raise InputError("a series needs at least one point", component=where)
        if all(isinstance(v, str) for v in x):
            x = tuple(_text(v, f"x[{i}]", where) for i, v in enumerate(x))
            if self.log_x:
                raise InputError("log_x needs numeric x, not categories", component=where)
        else:
            x = tuple(_number(v, f"x[{i}]", where) * 1.0 for i, v in enumerate(x))
        for field, values in (("x", x), ("y", y)):
            if getattr(self, f"log_{field}") and any(isinstance(v, float) and v <= 0 for v in values):
                raise InputError(f"log_{field} needs positive {field} values", component=where)
        _set(self, "x", x)
        _set(self, "y", y)

    @property
    def categorical(self) -> bool:
        return isinstance(self.x[0], str)


@attrs.frozen
class Provenance:
    """Where a report's numbers come from. ``plugins`` maps distribution -> version;
    ``runtime`` and ``extra`` hold JSON values; ``created`` is an ISO 8601 time (or "")."""

    plugins: Mapping[str, str] = attrs.field(factory=dict)
    model: str = ""
    runtime: Mapping[str, Any] = attrs.field(factory=dict)
    seed: int | None = None
    created: str = ""
    command: str = ""
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        where = "report provenance"
        plugins = _mapping(self.plugins, "plugins", where)
        for dist, version in plugins.items():
            _text(dist, "a distribution name", where, empty=False)
            _text(version, f"the version of {dist!r}", where)
        for field in ("model", "created", "command"):
            _text(getattr(self, field), field, where)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise InputError(f"seed must be an int or None, got {self.seed!r:.60}", component=where)
        if self.created:
            try:
                datetime.fromisoformat(self.created)
            except ValueError:
                raise InputError(f"created {self.created!r:.60} is not an ISO 8601 time",
                                 component=where) from None
        _set(self, "plugins", plugins)
        _set(self, "runtime", _json_value(_mapping(self.runtime, "runtime", where), "runtime", where))
        _set(self, "extra", _json_value(_mapping(self.extra, "extra", where), "extra", where))

    @classmethod
    def collect(cls, registry: Any = None, runtime: Any = None, model: Any = None, seed: int | None = None,
                *, command: str | None = None, extra: Mapping[str, Any] | None = None) -> Provenance:
        """The provenance of this process: tokensmith and its plugin distributions with their
        versions (from ``registry.plugins`` when given, else the installed ``tokensmith``
        entry points; read from metadata, nothing is imported), ``runtime`` (a
        :class:`~tokensmith.Runtime` or a mapping), the model (a source string or a
        :class:`~tokensmith.ModelSource`), the seed (default: the runtime's), the time now
        (UTC), the command line, and in ``extra`` the Python, platform and library versions."""
        plugins = {"tokensmith": _version("tokensmith")}
        if registry is not None:
            plugins.update({info.distribution: info.version for info in registry.plugins.values()
                            if not info.distribution.startswith("(")})  # "(in-process)" is no distribution
        else:
            for ep in metadata.entry_points(group=_ENTRY_POINT_GROUP):
                if ep.dist is not None:
                    plugins[ep.dist.name] = ep.dist.version
        if runtime is None:
            settings: dict[str, Any] = {}
        elif hasattr(runtime, "to_config"):
            settings = dict(runtime.to_config())
            if getattr(runtime, "world_size", 1) != 1:
                settings["world_size"] = runtime.world_size
        else:
            settings = _mapping(runtime, "runtime", "report provenance")
        if seed is None and isinstance(settings.get("seed"), int):
            seed = settings["seed"]
        packages = {p: v for p in _PACKAGES if (v := _version(p, None)) is not None}
        return cls(plugins=dict(sorted(plugins.items())),
                   model=model if isinstance(model, str) else str(getattr(model, "source", model or "")),
                   runtime=settings, seed=seed,
                   created=datetime.now(UTC).isoformat(timespec="seconds"),
                   command=shlex.join(sys.argv) if command is None else command,
                   extra={"python": platform.python_version(), "platform": platform.platform(),
                          "packages": packages, **(extra or {})})


def _version(dist: str, default: str | None = "0+unknown") -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return default


@attrs.frozen
class Report:
    """What an evaluation, a demo section or a benchmark measured (see the module docstring
    for the rules every report keeps). Change one with :func:`attrs.evolve` or
    :meth:`with_metrics`; render it with ``tokensmith.adapters.report``."""

    name: str
    metrics: Mapping[str, float] = attrs.field(factory=dict)
    tables: tuple[Table, ...] = ()
    series: tuple[Series, ...] = ()
    notes: tuple[str, ...] = ()
    provenance: Provenance = attrs.field(factory=Provenance)

    def __attrs_post_init__(self) -> None:
        _text(self.name, "a report's name", "report", empty=False)
        where = f"report {self.name!r}"
        if not _STEM.fullmatch(self.name) or ".." in self.name:
            raise InputError(f"name {self.name!r:.60} is not a safe file stem", component="report",
                             hint="use letters, digits, '.', '_', '-' or '+' (at most 128, no '..', "
                             "no path separators): renderers write <name>.json, .md and .png")
        metrics = {}
        for key, value in _mapping(self.metrics, "metrics", where).items():
            key = _text(key, "a metric name", where, empty=False)
            metrics[key] = _number(value, f"metric {key!r}", where)
        for field, kind in (("tables", Table), ("series", Series)):
            items = _sequence(getattr(self, field), field, where)
            for item in items:
                if not isinstance(item, kind):
                    raise InputError(f"{field} must hold {kind.__name__} records, got "
                                     f"{type(item).__name__} {item!r:.60}", component=where)
            _set(self, field, items)
        names = [s.name for s in self.series]
        if len(set(names)) != len(names):
            raise InputError(f"series names must be unique, got {names}", component=where)
        notes = tuple(_text(n, "a note", where) for n in _sequence(self.notes, "notes", where))
        if not isinstance(self.provenance, Provenance):
            raise InputError(f"provenance must be a Provenance record, got {type(self.provenance).__name__}",
                             component=where)
        _set(self, "metrics", metrics)
        _set(self, "notes", notes)

    def with_metrics(self, metrics: Mapping[str, Any] = (), /, **more: Any) -> Report:
        """A copy with these metrics added (or replaced)."""
        return attrs.evolve(self, metrics={**self.metrics, **dict(metrics), **more})

    # -- JSON -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The report as JSON values: the record's keys in a fixed order, metrics and
        provenance mappings in the order they were given."""
        return {
            "format": REPORT_FORMAT,
            "name": self.name,
            "metrics": dict(self.metrics),
            "tables": [{"title": t.title, "columns": list(t.columns), "rows": [list(r) for r in t.rows]}
                       for t in self.tables],
            "series": [{f.name: list(v) if isinstance(v, tuple) else v for f, v in
                        ((f, getattr(s, f.name)) for f in attrs.fields(Series))} for s in self.series],
            "notes": list(self.notes),
            "provenance": attrs.asdict(self.provenance),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> Report:
        where = "report JSON"
        data = _mapping(data, "a report", where)
        if data.get("format") != REPORT_FORMAT:
            raise ArtifactVersionError(f"report format {data.get('format')!r} is not {REPORT_FORMAT}",
                                       component=where, hint="written by another tokensmith version")
        _check_keys(data, {"format", "name", "metrics", "tables", "series", "notes", "provenance"}, where,
                    {"name"})
        tables = []
        for t in _sequence(data.get("tables", ()), "tables", where):
            _check_keys(_mapping(t, "a table", where), {"title", "columns", "rows"}, where,
                        {"title", "columns"})
            tables.append(Table(**t))
        series = []
        for s in _sequence(data.get("series", ()), "series", where):
            _check_keys(_mapping(s, "a series", where), {f.name for f in attrs.fields(Series)}, where,
                        {"name", "x", "y"})
            series.append(Series(**s))
        provenance = _mapping(data.get("provenance", {}), "provenance", where)
        _check_keys(provenance, {f.name for f in attrs.fields(Provenance)}, where)
        return cls(name=data.get("name"), metrics=data.get("metrics", {}), tables=tuple(tables),
                   series=tuple(series), notes=tuple(_sequence(data.get("notes", ()), "notes", where)),
                   provenance=Provenance(**provenance))

    @classmethod
    def from_json(cls, text: str | bytes) -> Report:
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise InputError(f"not a report's JSON: {exc}", component="report JSON") from None
        return cls.from_dict(data)


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str,
                required: frozenset[str] | set[str] = frozenset()) -> None:
    unknown, missing = sorted(set(data) - allowed), sorted(required - set(data))
    if unknown or missing:
        raise InputError(", ".join(([f"unknown keys {unknown}"] if unknown else [])
                                   + ([f"missing keys {missing}"] if missing else [])),
                         component=where, hint="allowed: " + ", ".join(sorted(allowed)))
