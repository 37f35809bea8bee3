"""LightMem plugin providing the ``BM25`` context retriever (keyword search over memories).

The entry point is :mod:`lightmem_bm25.plugin`; the index itself lives in
:mod:`lightmem_bm25.index` and is imported only when a configuration selects it.
"""

__version__ = "0.1.0"
