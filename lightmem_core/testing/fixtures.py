"""Helpers behind the pytest fixtures of the testing kit."""

from __future__ import annotations

from ..plugins import PluginHost


def fresh_host(*plugins: object) -> PluginHost:
    """A plugin host that loads no entry points, with only ``plugins`` registered."""
    host = PluginHost(autoload=False)
    for plugin in plugins:
        host.register(plugin)
    return host
