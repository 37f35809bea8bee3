"""Registers the ``BM25`` context retriever. Imports only the contract, attrs and the stdlib."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

import attrs
from lightmem_hookspecs import BackendContext, BackendRegistrar, hookimpl
from lightmem_hookspecs.options import not_blank, positive, unit_interval

#: The plugin contract (lightmem-hookspecs) version this plugin is built for.
LIGHTMEM_CONTRACT = "1.7"

_INDEX_FILE = "bm25_index.json"

if TYPE_CHECKING:
    from .index import BM25Retriever


@attrs.frozen
class BM25Options:
    """Options of the ``BM25`` context retriever (``context_retriever.configs``).

    Field names follow the original LightMem ``BM25Config``; ``stopwords`` and ``variant`` are
    additions. See the plugin's README for what each option does.
    """

    k1: float = attrs.field(default=1.5, validator=positive)
    b: float = attrs.field(default=0.75, validator=unit_interval)
    variant: Literal["okapi", "plus", "l"] = "okapi"
    tokenizer: Literal["word", "whitespace"] | None = None
    lowercase: bool = True
    stopwords: bool = True
    use_stemming: bool = True
    on_disk: bool = False
    index_path: str = attrs.field(default=_INDEX_FILE, validator=not_blank)


def build_bm25(options: BM25Options, context: BackendContext) -> BM25Retriever:
    """The factory: builds the retriever (imports rank-bm25 only now)."""
    from lightmem_textkit.analysis import Analyzer

    from .index import BM25Retriever

    snapshot = None
    if options.on_disk:
        name = options.index_path
        if name == _INDEX_FILE:  # left at the default: one file per instance
            name = context.storage_name(_INDEX_FILE)
        snapshot = os.path.join(context.memory_dir, os.path.expanduser(name))
    return BM25Retriever(
        analyzer=Analyzer(
            tokenizer=options.tokenizer or "word",
            lowercase=options.lowercase,
            stopwords=options.stopwords,
            stem=options.use_stemming,
        ),
        k1=options.k1,
        b=options.b,
        variant=options.variant,
        snapshot_path=snapshot,
    )


@hookimpl
def lightmem_register_backends(registrar: BackendRegistrar) -> None:
    registrar.context_retriever(
        "BM25",
        build_bm25,
        options=BM25Options,
        description="In-memory BM25 keyword index (rank-bm25), rebuilt from the record store.",
    )
