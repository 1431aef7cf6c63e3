"""Building a plugin manager: hookspecs, built-in adapters, and entry-point discovery.

Each plugin is loaded and registered inside its own isolation block: an import
that raises (or calls ``sys.exit``), a hook implementation whose arguments do
not match its spec, a hook unknown to this version of tokensmith (misspelt, or
written for a newer core) — each skips that plugin with a warning naming its
distribution (and the hook, with a did-you-mean); ``TOKENSMITH_STRICT_PLUGINS=1``
turns the warning into :class:`PluginLoadError`. Skipped plugins are kept in
``pm.tokensmith_failed`` so ``tokensmith plugins`` lists them with their error.

``TOKENSMITH_LOAD_PLUGINS`` (comma-separated entry-point or distribution names)
is an allowlist, ``TOKENSMITH_DISABLE_PLUGINS`` a denylist; names match case-
and ``-``/``_``-insensitively, and a name that matches nothing installed warns.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from importlib import metadata

import attrs
import pluggy

from tokensmith.core.errors import PluginLoadError
from tokensmith.spec import hookspecs

ENTRY_POINT_GROUP = "tokensmith"
BUILTIN = "tokensmith.adapters"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@attrs.frozen
class PluginInfo:
    name: str
    distribution: str
    version: str
    module: str


@attrs.frozen
class PluginFailure:
    """A plugin that was skipped (or a part of one that was): where and why."""

    name: str
    distribution: str
    version: str
    stage: str
    error: str


def canonical(name: str) -> str:
    """Distribution-name normalisation (PEP 503): case- and ``-_.``-insensitive."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_strict(env: Mapping[str, str]) -> bool:
    """``TOKENSMITH_STRICT_PLUGINS``: 1/true/yes/on (any case) is strict; 0/false/no/off or
    unset is not; anything else warns and is not strict."""
    raw = env.get("TOKENSMITH_STRICT_PLUGINS", "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value not in _FALSE:
        warnings.warn(f"TOKENSMITH_STRICT_PLUGINS={raw!r} is not a boolean (use 1 or 0); not strict",
                      RuntimeWarning, stacklevel=3)
    return False


def report(pm: pluggy.PluginManager, failure: PluginFailure, env: Mapping[str, str], *,
           hint: str, cause: BaseException | None = None) -> None:
    """Record a plugin failure; warn, or raise :class:`PluginLoadError` in strict mode."""
    pm.tokensmith_failed[failure.name] = failure
    err = PluginLoadError(failure.error, plugin=failure.distribution, hint=hint)
    if is_strict(env):
        raise err from cause
    warnings.warn(str(err), RuntimeWarning, stacklevel=3)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def make_plugin_manager(*, entry_points: bool = True, plugins: Iterable[object] = (),
                        env: Mapping[str, str] | None = None) -> pluggy.PluginManager:
    """A fresh manager: hookspecs, the core adapters, installed plugins, then ``plugins``.

    Nothing is global: every call builds a new manager (tests build one each).
    """
    from tokensmith.adapters import hooks as adapter_hooks

    env = os.environ if env is None else env
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.tokensmith_info = {}
    pm.tokensmith_failed = {}
    register_plugin(pm, adapter_hooks, BUILTIN, "tokensmith", _version("tokensmith"), env=env)
    if entry_points:
        _load_entry_points(pm, env)
    for plugin in plugins:
        register_plugin(pm, plugin, env=env)
    return pm


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Hook implementations (or functions named like hooks) that this core does not know,
    each with a did-you-mean; and known hook names not marked with ``@hookimpl``."""
    problems = []
    known = set(hookspecs.HOOKS)
    marked = {c.name for c in pm.get_hookcallers(plugin) or []}
    for name in marked - known:
        close = difflib.get_close_matches(name, hookspecs.HOOKS, n=1)
        problems.append(f"hook {name!r} is not a tokensmith hook"
                        + (f" (did you mean {close[0]!r}?)" if close
                           else " (written for a newer tokensmith?)"))
    for name in dir(plugin):
        if name.startswith("tokensmith_") and name in known and name not in marked \
                and callable(getattr(plugin, name, None)):
            problems.append(f"{name!r} is not marked with @tokensmith.hookimpl, so it would never be called")
    return problems


def register_plugin(pm: pluggy.PluginManager, plugin: object, name: str | None = None,
                    distribution: str = "(in-process)", version: str = "0", *,
                    env: Mapping[str, str] | None = None) -> str | None:
    """Register one plugin object in its own isolation block; ``None`` if it was skipped."""
    env = os.environ if env is None else env
    name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    try:
        pm.register(plugin, name=name)
    except Exception as exc:  # noqa: BLE001 - pluggy's PluginValidationError, or a duplicate name
        report(pm, PluginFailure(name, distribution, version, "register",
                                 f"plugin {name!r} cannot be registered: {type(exc).__name__}: {exc}"),
               env, hint=f"fix or uninstall {distribution}", cause=exc)
        return None
    problems = _unknown_hooks(pm, plugin)
    if problems:
        pm.unregister(plugin)
        report(pm, PluginFailure(name, distribution, version, "hooks",
                                 f"plugin {name!r} skipped: " + "; ".join(problems)),
               env, hint=f"fix the hook names in {distribution} (docs/hooks.md lists them) or "
               "upgrade tokensmith")
        return None
    pm.tokensmith_info[name] = PluginInfo(name, distribution, version,
                                          getattr(plugin, "__name__", type(plugin).__name__))
    return name


def _warn_unmatched(variable: str, wanted: list[str], available: set[str]) -> None:
    for raw in wanted:
        if canonical(raw) not in {canonical(a) for a in available}:
            close = difflib.get_close_matches(raw, sorted(available), n=1)
            warnings.warn(f"{variable} names {raw!r}, but no installed tokensmith plugin or distribution "
                          "is called that" + (f"; did you mean {close[0]!r}?" if close else "")
                          + f" (installed: {', '.join(sorted(available)) or 'none'})",
                          RuntimeWarning, stacklevel=4)


def _load_entry_points(pm: pluggy.PluginManager, env: Mapping[str, str]) -> None:
    allow_raw = _split(env.get("TOKENSMITH_LOAD_PLUGINS"))
    deny_raw = _split(env.get("TOKENSMITH_DISABLE_PLUGINS"))
    allow = {canonical(n) for n in allow_raw}
    deny = {canonical(n) for n in deny_raw}
    available: set[str] = set()
    for ep in _entry_points():
        dist = ep.dist.name if ep.dist is not None else "(unknown distribution)"
        version = ep.dist.version if ep.dist is not None else "0"
        available |= {ep.name, dist}
        names = {canonical(ep.name), canonical(dist)}
        if (allow and not names & allow) or names & deny:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure of a third-party import
            what = f"exited (SystemExit {exc.code!r})" if isinstance(exc, SystemExit) else \
                f"failed: {type(exc).__name__}: {exc}"
            report(pm, PluginFailure(ep.name, dist, version, "import",
                                     f"plugin {ep.name!r} ({ep.value}) could not be imported: {what}"),
                   env, hint=f"reinstall or uninstall {dist}; TOKENSMITH_DISABLE_PLUGINS={ep.name} skips it",
                   cause=exc)
            continue
        register_plugin(pm, plugin, ep.name, dist, version, env=env)
    _warn_unmatched("TOKENSMITH_LOAD_PLUGINS", allow_raw, available)
    _warn_unmatched("TOKENSMITH_DISABLE_PLUGINS", deny_raw, available)
