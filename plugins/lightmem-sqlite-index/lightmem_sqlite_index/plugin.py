"""Registers ``sqlite-bm25`` and ``sqlite-fts``. Imports only the contract (with its option
validators), attrs and the stdlib."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

import attrs
from lightmem_hookspecs import BackendContext, BackendRegistrar, hookimpl
from lightmem_hookspecs.options import at_least, not_blank, positive, unit_interval

#: The plugin contract (lightmem-hookspecs) version this plugin is built for.
LIGHTMEM_CONTRACT = "1.7"

if TYPE_CHECKING:
    from .bm25 import SQLiteBM25Retriever
    from .fts import SQLiteFTSRetriever


@attrs.frozen
class SQLiteBM25Options:
    """Options of the ``sqlite-bm25`` context retriever (``context_retriever.configs``).

    ``k1``, ``b``, ``tokenizer``, ``stopwords`` and ``use_stemming`` mean what they mean for
    ``BM25`` (the two share one analyser and one scoring function); see the plugin's README.
    """

    k1: float = attrs.field(default=1.5, validator=positive)
    b: float = attrs.field(default=0.75, validator=unit_interval)
    tokenizer: Literal["word", "whitespace"] | None = None
    stopwords: bool = True
    use_stemming: bool = True
    index_path: str = attrs.field(default="lexical_bm25.sqlite3", validator=not_blank)
    merge_after: int = attrs.field(default=16, validator=at_least(1))


@attrs.frozen
class SQLiteFTSOptions:
    """Options of the ``sqlite-fts`` context retriever (``context_retriever.configs``)."""

    tokenizer: Literal["word", "whitespace"] | None = None
    stopwords: bool = True
    use_stemming: bool = True
    index_path: str = attrs.field(default="lexical_fts.sqlite3", validator=not_blank)


def _analyzer(tokenizer: str | None, stopwords: bool, stem: bool) -> Any:
    from lightmem_textkit.analysis import Analyzer

    return Analyzer(tokenizer=tokenizer or "word", lowercase=True, stopwords=stopwords, stem=stem)


BM25_FILE = "lexical_bm25.sqlite3"
FTS_FILE = "lexical_fts.sqlite3"


def _path(context: BackendContext, index_path: str, default: str) -> str:
    """The index file: as configured, or the default named for this instance (a second
    sqlite index in one chain gets a file of its own)."""
    name = context.storage_name(default) if index_path == default else index_path
    return os.path.join(context.memory_dir, os.path.expanduser(name))


def build_sqlite_bm25(options: SQLiteBM25Options, context: BackendContext) -> SQLiteBM25Retriever:
    """The factory: opens (or creates) the index file inside the memory directory."""
    from .bm25 import SQLiteBM25Retriever

    return SQLiteBM25Retriever(
        _path(context, options.index_path, BM25_FILE),
        _analyzer(options.tokenizer, options.stopwords, options.use_stemming),
        k1=options.k1,
        b=options.b,
        merge_after=options.merge_after,
    )


def build_sqlite_fts(options: SQLiteFTSOptions, context: BackendContext) -> SQLiteFTSRetriever:
    """The factory: opens (or creates) the FTS5 file inside the memory directory."""
    from .fts import SQLiteFTSRetriever

    return SQLiteFTSRetriever(
        _path(context, options.index_path, FTS_FILE),
        _analyzer(options.tokenizer, options.stopwords, options.use_stemming),
    )


@hookimpl
def lightmem_register_backends(registrar: BackendRegistrar) -> None:
    registrar.context_retriever(
        "sqlite-bm25",
        build_sqlite_bm25,
        options=SQLiteBM25Options,
        description="Persistent, incremental BM25 inverted index in SQLite (the default).",
    )
    registrar.context_retriever(
        "sqlite-fts",
        build_sqlite_fts,
        options=SQLiteFTSOptions,
        description="Persistent, incremental keyword index on SQLite FTS5 (FTS5's BM25).",
    )
