"""Registers ``postgres`` (record store), ``pgvector`` (embedding retriever) and
``postgres-fts`` (context retriever).

Imports only the contract, the options module and the standard library: psycopg loads in the
factories.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from lightmem_hookspecs import BackendContext, BackendRegistrar, hookimpl

from .options import (
    PgVectorOptions,
    PostgresFTSOptions,
    PostgresStoreOptions,
)

#: The plugin contract (lightmem-hookspecs) version this plugin is built for.
LIGHTMEM_CONTRACT = "1.7"

if TYPE_CHECKING:
    from .fts import PostgresFTSRetriever
    from .records import PostgresRecordStore
    from .vectors import PgVectorRetriever


def table_name(prefix: str, configured: str | None, context: BackendContext) -> str:
    if configured is not None:
        return configured
    instance = re.sub(r"[^a-z0-9_]+", "_", (context.instance or "default").lower()).strip("_")
    return f"{prefix}_{instance or 'default'}"[:63]


def build_pgvector(options: PgVectorOptions, context: BackendContext) -> PgVectorRetriever:
    """The factory: connects (psycopg loads here); the table is made by ``open``."""
    from .vectors import PgVectorRetriever

    return PgVectorRetriever(options, table=table_name("vectors", options.table, context))


def build_postgres_fts(
    options: PostgresFTSOptions, context: BackendContext
) -> PostgresFTSRetriever:
    """The factory: connects and creates the table and its GIN index when missing."""
    from .fts import PostgresFTSRetriever

    return PostgresFTSRetriever(options, table=table_name("fts", options.table, context))


def build_postgres_store(
    options: PostgresStoreOptions, context: BackendContext
) -> PostgresRecordStore:
    """The factory: connects, brings the schema to this version, releases dead claims."""
    from .records import PostgresRecordStore

    return PostgresRecordStore(options)


@hookimpl
def lightmem_register_backends(registrar: BackendRegistrar) -> None:
    registrar.record_store(
        "postgres",
        build_postgres_store,
        options=PostgresStoreOptions,
        description=(
            "The whole record store in one Postgres schema, shared by many processes on many "
            "machines (claims with SKIP LOCKED, a connection pool, versioned schema)."
        ),
    )
    registrar.embedding_retriever(
        "pgvector",
        build_pgvector,
        options=PgVectorOptions,
        description="Vectors in Postgres with pgvector: HNSW, cosine, filters in SQL.",
    )
    registrar.context_retriever(
        "postgres-fts",
        build_postgres_fts,
        options=PostgresFTSOptions,
        description="Postgres full-text search (tsvector + GIN), ranked by ts_rank_cd.",
    )
