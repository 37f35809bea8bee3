"""Registers the ``networkx`` graph memory. Imports only the contract, attrs and the stdlib."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import attrs
from lightmem_hookspecs import BackendContext, BackendRegistrar, hookimpl
from lightmem_hookspecs.options import not_blank

#: The plugin contract (lightmem-hookspecs) version this plugin is built for.
LIGHTMEM_CONTRACT = "1.7"

_GRAPH_FILE = "graph.sqlite"

if TYPE_CHECKING:
    from .store import NetworkxGraph


@attrs.frozen
class NetworkxOptions:
    """Options of the ``networkx`` graph memory (``graph_memory.configs``).

    ``path``: the SQLite file the graph is kept in, relative to the memory directory
    (``None``: in memory only, gone when the process ends).
    """

    path: str | None = attrs.field(default=_GRAPH_FILE, validator=not_blank)


def build_networkx(options: NetworkxOptions, context: BackendContext) -> NetworkxGraph:
    """The factory: opens the SQLite file and loads the graph (imports networkx only now)."""
    from .store import NetworkxGraph

    path = None
    if options.path is not None:
        name = options.path
        if name == _GRAPH_FILE:  # left at the default: one file per instance
            name = context.storage_name(_GRAPH_FILE)
        path = os.path.join(context.memory_dir, os.path.expanduser(name))
    return NetworkxGraph(path)


@hookimpl
def lightmem_register_backends(registrar: BackendRegistrar) -> None:
    registrar.graph_memory(
        "networkx",
        build_networkx,
        options=NetworkxOptions,
        description="Entity/relation multi-digraph (networkx), persisted in an SQLite file.",
    )
