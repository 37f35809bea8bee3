"""LightMem plugin providing the ``sqlite-fts`` context retriever: a persistent, incremental
BM25 keyword index on SQLite FTS5.

The entry point is :mod:`lightmem_sqlite_index.plugin`; the index lives in
:mod:`lightmem_sqlite_index.fts` and is imported only when a configuration selects it.
"""

__version__ = "0.1.0"
