"""Registers the ``qdrant`` embedding retriever. Imports only the contract, attrs and the stdlib."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lightmem_hookspecs import BackendContext, BackendRegistrar, hookimpl

from .options import QdrantOptions

#: The plugin contract (lightmem-hookspecs) version this plugin is built for.
LIGHTMEM_CONTRACT = "1.7"

if TYPE_CHECKING:
    from .store import QdrantRetriever


def build_qdrant(options: QdrantOptions, context: BackendContext) -> QdrantRetriever:
    """The factory: heavy libraries (qdrant_client, qdrant_edge) load only here."""
    import attrs

    from .store import QdrantRetriever

    default = attrs.fields(QdrantOptions).collection_name.default
    if options.collection_name == default:  # left at the default: one collection per instance
        options = attrs.evolve(options, collection_name=context.storage_name(default))
    return QdrantRetriever(options, memory_dir=context.memory_dir)


@hookimpl
def lightmem_register_backends(registrar: BackendRegistrar) -> None:
    registrar.embedding_retriever(
        "qdrant",
        build_qdrant,
        options=QdrantOptions,
        description=(
            "Qdrant vector store: embedded Qdrant Edge on disk (default), in memory, "
            "or a Qdrant server."
        ),
    )
