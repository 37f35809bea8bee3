"""Helpers behind the pytest fixtures of the testing kit."""

from __future__ import annotations

from ..plugins import PluginHost


def fresh_host(*plugins: object) -> PluginHost:
    """A plugin host that loads no entry points: the core's built-in backends (the
    ``embedding`` segmenter, the ``newer_first`` reranker, which the defaults may select) and
    ``plugins``, registered."""
    from .. import builtin

    host = PluginHost(autoload=False)
    if builtin not in plugins:
        host.register(builtin)
    for plugin in plugins:
        host.register(plugin)
    return host
