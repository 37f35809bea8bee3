"""LightMem plugin providing the ``huggingface`` text embedder (sentence-transformers, offline).

The entry point is :mod:`lightmem_huggingface.plugin`; the embedder lives in
:mod:`lightmem_huggingface.embedder` and is imported only when a configuration selects it.
"""

__version__ = "0.1.0"
