"""Registers ``pgvector`` (embedding retriever) and ``postgres-fts`` (context retriever).

Imports only the contract, attrs and the standard library: psycopg loads in the factories.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import attrs
from lightmem_hookspecs import BackendContext, Register, hookimpl

from .dsn import mask_dsn, masked_repr

#: The plugin contract (lightmem-hookspecs) version this plugin is built for.
LIGHTMEM_CONTRACT = "1.4"

if TYPE_CHECKING:
    from .fts import PostgresFTSRetriever
    from .records import PostgresRecordStore
    from .vectors import PgVectorRetriever

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _identifier(_inst: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not _IDENTIFIER.fullmatch(value):
        raise ValueError(
            f"{attribute.name}: use lower-case letters, digits and '_' (not first), at most 63 "
            f"characters; got {value!r}"
        )


def _dsn(_inst: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not value.strip():
        raise ValueError(
            f"{attribute.name}: must not be empty (leave it out to use $LIGHTMEM_POSTGRES_DSN "
            f"or libpq's PG* variables); got {mask_dsn(value)!r}"
        )


def _sslmode(_inst: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and value not in SSL_MODES:
        raise ValueError(f"{attribute.name}: expected one of {', '.join(SSL_MODES)}, got {value!r}")


def _positive(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name}: must be > 0, got {value}")


@attrs.frozen
class ConnectionOptions:
    """How to reach the server and where this memory's tables live. ``repr`` masks the password."""

    dsn: str | None = attrs.field(default=None, validator=_dsn, repr=masked_repr)
    #: The Postgres schema (namespace) holding this memory's tables: one per memory.
    schema: str = attrs.field(default="lightmem", validator=_identifier)
    sslmode: str | None = attrs.field(default=None, validator=_sslmode)
    sslrootcert: str | None = None
    connect_timeout: float = attrs.field(default=10.0, validator=_positive)
    pool_min_size: int = attrs.field(default=1, validator=attrs.validators.ge(0))
    pool_max_size: int = attrs.field(default=10, validator=attrs.validators.ge(1))

    def conninfo(self) -> str:
        from .connection import conninfo

        return conninfo(
            self.dsn,
            sslmode=self.sslmode,
            sslrootcert=self.sslrootcert,
            connect_timeout=self.connect_timeout,
        )


@attrs.frozen
class PostgresStoreOptions(ConnectionOptions):
    """Options of the ``postgres`` record store (``record_store.configs``)."""


@attrs.frozen
class PgVectorOptions(ConnectionOptions):
    """Options of the ``pgvector`` embedding retriever (``embedding_retriever.configs``)."""

    #: The table; by default ``vectors_<instance>`` (``vectors_embedding`` for the first one).
    table: str | None = attrs.field(default=None, validator=_identifier)
    hnsw_m: int = attrs.field(default=16, validator=attrs.validators.ge(2))
    hnsw_ef_construction: int = attrs.field(default=64, validator=attrs.validators.ge(4))
    #: Candidates the HNSW walk keeps (``hnsw.ef_search``); raised to the limit when smaller.
    ef_search: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    #: A search restricted to a user, agent or run: ``exact`` ranks that scope's rows exactly
    #: (found by their index; right for up to some 10^4-10^5 rows per scope), ``hnsw`` walks the
    #: graph first and scans exactly only when the walk returns fewer hits than asked.
    scoped_search: str = attrs.field(
        default="exact", validator=attrs.validators.in_(("exact", "hnsw"))
    )


@attrs.frozen
class PostgresFTSOptions(ConnectionOptions):
    """Options of the ``postgres-fts`` context retriever (``context_retriever.configs``)."""

    #: The table; by default ``fts_<instance>`` (``fts_context`` for the first one).
    table: str | None = attrs.field(default=None, validator=_identifier)
    #: The text search configuration: stemming and stop words (``simple``: neither).
    language: str = attrs.field(default="english", validator=_identifier)


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
def lightmem_register_record_stores(register: Register) -> None:
    register(
        "postgres",
        build_postgres_store,
        options=PostgresStoreOptions,
        description=(
            "The whole record store in one Postgres schema, shared by many processes on many "
            "machines (claims with SKIP LOCKED, a connection pool, versioned schema)."
        ),
    )


@hookimpl
def lightmem_register_embedding_retrievers(register: Register) -> None:
    register(
        "pgvector",
        build_pgvector,
        options=PgVectorOptions,
        description="Vectors in Postgres with pgvector: HNSW, cosine, filters in SQL.",
    )


@hookimpl
def lightmem_register_context_retrievers(register: Register) -> None:
    register(
        "postgres-fts",
        build_postgres_fts,
        options=PostgresFTSOptions,
        description="Postgres full-text search (tsvector + GIN), ranked by ts_rank_cd.",
    )
