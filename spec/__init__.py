"""tokensmith.spec — the plugin contract: markers and hook specifications."""

from .hookspecs import HOOKS, REGISTRATION_HOOKS, hookimpl, hookspec

__all__ = ["HOOKS", "REGISTRATION_HOOKS", "hookimpl", "hookspec"]
