"""tokensmith.registry — plugin discovery, the component store, pipeline building."""

from .discovery import ENTRY_POINT_GROUP, PluginInfo, make_plugin_manager
from .store import Registry

__all__ = ["ENTRY_POINT_GROUP", "PluginInfo", "Registry", "make_plugin_manager"]
