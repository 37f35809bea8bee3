"""Registers the ``falkordb`` graph memory. Imports only the contract, attrs and the stdlib."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import attrs
from lightmem_hookspecs import BackendContext, BackendRegistrar, hookimpl
from lightmem_hookspecs.options import not_blank, tcp_port

#: The plugin contract (lightmem-hookspecs) version this plugin is built for.
LIGHTMEM_CONTRACT = "1.7"

if TYPE_CHECKING:
    from .store import FalkorGraph


@attrs.frozen
class FalkorOptions:
    """Options of the ``falkordb`` graph memory (``graph_memory.configs``).

    ``password_env`` names an environment variable holding the password, so a configuration
    file need not contain it (``password`` is used when given).
    """

    host: str = attrs.field(default="127.0.0.1", validator=not_blank)
    port: int = attrs.field(default=6379, validator=tcp_port)
    graph: str = attrs.field(default="lightmem", validator=not_blank)
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    timeout: float = 30.0


def build_falkordb(options: FalkorOptions, context: BackendContext) -> FalkorGraph:
    """The factory: connects to the server (imports the falkordb client only now)."""
    from .store import FalkorGraph

    password = options.password
    if password is None and options.password_env:
        password = os.environ.get(options.password_env)
    return FalkorGraph(
        host=options.host,
        port=options.port,
        graph=options.graph,
        username=options.username,
        password=password,
        timeout=options.timeout,
    )


@hookimpl
def lightmem_register_backends(registrar: BackendRegistrar) -> None:
    registrar.graph_memory(
        "falkordb",
        build_falkordb,
        options=FalkorOptions,
        description="Entity/relation graph on a FalkorDB server (Cypher over Redis protocol).",
    )
