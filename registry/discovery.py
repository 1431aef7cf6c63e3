"""Building a plugin manager: hookspecs, built-in adapters, and entry-point discovery.

Each entry point of the group ``tokensmith`` is loaded inside its own
try/except: a broken plugin warns (naming its distribution) and is skipped;
``TOKENSMITH_STRICT_PLUGINS=1`` turns that into :class:`PluginLoadError`.
``TOKENSMITH_LOAD_PLUGINS`` (comma-separated entry-point or distribution
names) is an allowlist, ``TOKENSMITH_DISABLE_PLUGINS`` a denylist.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from importlib import metadata

import attrs
import pluggy

from tokensmith.core.errors import PluginLoadError
from tokensmith.spec import hookspecs

ENTRY_POINT_GROUP = "tokensmith"
BUILTIN = "tokensmith.adapters"


@attrs.frozen
class PluginInfo:
    name: str
    distribution: str
    version: str
    module: str


def _split(value: str | None) -> set[str]:
    return {v.strip() for v in (value or "").split(",") if v.strip()}


def _entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def make_plugin_manager(*, entry_points: bool = True, plugins: Iterable[object] = (),
                        env: Mapping[str, str] | None = None) -> pluggy.PluginManager:
    """A fresh manager: hookspecs, the core adapters, installed plugins, then ``plugins``.

    Nothing is global: every call builds a new manager (tests build one each).
    """
    from tokensmith.adapters import hooks as adapter_hooks

    env = os.environ if env is None else env
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(adapter_hooks, name=BUILTIN)
    pm.tokensmith_info = {BUILTIN: PluginInfo(BUILTIN, "tokensmith", _version("tokensmith"),
                                              adapter_hooks.__name__)}
    if entry_points:
        _load_entry_points(pm, env)
    for plugin in plugins:
        register_plugin(pm, plugin)
    pm.check_pending()
    return pm


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def register_plugin(pm: pluggy.PluginManager, plugin: object, name: str | None = None,
                    distribution: str = "(in-process)", version: str = "0") -> str:
    name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    pm.register(plugin, name=name)
    pm.tokensmith_info[name] = PluginInfo(name, distribution, version,
                                          getattr(plugin, "__name__", type(plugin).__name__))
    return name


def _load_entry_points(pm: pluggy.PluginManager, env: Mapping[str, str]) -> None:
    allow = _split(env.get("TOKENSMITH_LOAD_PLUGINS"))
    deny = _split(env.get("TOKENSMITH_DISABLE_PLUGINS"))
    strict = env.get("TOKENSMITH_STRICT_PLUGINS", "") not in ("", "0", "false", "no")
    for ep in _entry_points():
        dist = ep.dist.name if ep.dist is not None else "(unknown distribution)"
        names = {ep.name, dist}
        if (allow and not names & allow) or names & deny:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
            register_plugin(pm, plugin, ep.name, dist, ep.dist.version if ep.dist else "0")
        except Exception as exc:  # noqa: BLE001 - any failure of a third-party import
            err = PluginLoadError(
                f"plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}",
                plugin=dist, hint=f"reinstall or uninstall {dist}; "
                "TOKENSMITH_DISABLE_PLUGINS=" + ep.name + " skips it")
            if strict:
                raise err from exc
            warnings.warn(str(err), RuntimeWarning, stacklevel=2)
