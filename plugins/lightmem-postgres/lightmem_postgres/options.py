"""The options of the plugin's three backends: how to reach the server, where the tables live.

Imports only attrs, the shared option validators and the standard library.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
from lightmem_hookspecs.options import OptionError, at_least, choice, positive, unit_interval

from .dsn import mask_dsn, masked_repr

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _identifier(_inst: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not _IDENTIFIER.fullmatch(value):
        raise OptionError.at(
            attribute,
            f"not a Postgres identifier: {value!r}",
            "use lower-case letters, digits and '_' (not first), at most 63 characters",
        )


def _dsn(_inst: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not value.strip():
        raise OptionError.at(
            attribute,
            f"must not be empty, got {mask_dsn(value)!r}",
            "leave it out to use $LIGHTMEM_POSTGRES_DSN or libpq's PG* variables",
        )


@attrs.frozen
class ConnectionOptions:
    """How to reach the server and where this memory's tables live. ``repr`` masks the password."""

    dsn: str | None = attrs.field(default=None, validator=_dsn, repr=masked_repr)
    #: The Postgres schema (namespace) holding this memory's tables: one per memory.
    schema: str = attrs.field(default="lightmem", validator=_identifier)
    sslmode: str | None = attrs.field(default=None, validator=choice(*SSL_MODES, None))
    sslrootcert: str | None = None
    connect_timeout: float = attrs.field(default=10.0, validator=positive)
    pool_min_size: int = attrs.field(default=1, validator=at_least(0))
    pool_max_size: int = attrs.field(default=10, validator=at_least(1))

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
    hnsw_m: int = attrs.field(default=16, validator=at_least(2))
    hnsw_ef_construction: int = attrs.field(default=64, validator=at_least(4))
    #: Candidates the HNSW walk keeps (``hnsw.ef_search``); raised to the limit when smaller.
    ef_search: int = attrs.field(default=100, validator=at_least(1))
    #: A search restricted to a user, agent or run: ``auto`` ranks the scope's rows exactly
    #: when it has at most ``exact_below`` of them (found by the scope's index) and walks the
    #: HNSW graph otherwise; ``exact`` always ranks exactly; ``hnsw`` always walks the graph.
    #: A walk that returns fewer hits than asked (a narrow filter) is followed by an exact scan.
    scoped_search: str = attrs.field(default="auto", validator=choice("auto", "exact", "hnsw"))
    exact_below: int = attrs.field(default=10_000, validator=at_least(0))


@attrs.frozen
class PostgresFTSOptions(ConnectionOptions):
    """Options of the ``postgres-fts`` context retriever (``context_retriever.configs``)."""

    #: The table; by default ``fts_<instance>`` (``fts_context`` for the first one).
    table: str | None = attrs.field(default=None, validator=_identifier)
    #: The text search configuration: stemming and stop words (``simple``: neither).
    language: str = attrs.field(default="english", validator=_identifier)
    #: BM25's term-frequency saturation and length normalisation (those of the embedded
    #: ``sqlite-bm25`` by default).
    k1: float = attrs.field(default=1.5, validator=positive)
    b: float = attrs.field(default=0.75, validator=unit_interval)
    #: A user with at most this many documents is searched through the user index (each of
    #: its rows tested), a larger one through the GIN index.
    scan_below: int = attrs.field(default=5000, validator=at_least(0))
    #: Query terms are used rarest first while their summed document frequency stays under
    #: this (the rarest one always): bounds the documents a query with common words scores.
    max_candidates: int = attrs.field(default=20000, validator=at_least(1))
