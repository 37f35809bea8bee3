"""The table of backend kinds: the one place the contract lists them.

Everything else is derived from :data:`KINDS` or checked against it: the configuration keys
that select a backend, the Protocol a built backend must satisfy, which kinds can join the
retrieval chain, the deprecated per-kind registration hooks, and the typed methods of
:class:`~lightmem_hookspecs.BackendRegistrar` (one per kind, named after it; a test fails when
a row has no method or a method no row).
"""

from __future__ import annotations

import attrs

from .protocols import (
    AnswerLimit,
    CacheStats,
    Closeable,
    ContextRetriever,
    EmbeddingRetriever,
    EveryStrategy,
    GraphMemory,
    IndexCompaction,
    MemoryManager,
    MultimodalEmbedder,
    PreCompressor,
    Reranker,
    SchemaInPrompt,
    TextBulkLoad,
    TextEmbedder,
    TextReset,
    TopicSegmenter,
    TopOnly,
    VectorBulkLoad,
    VectorRecreate,
)
from .records import EntryFacets, EntryPositions, EntryRestore, RecordStore, ScopeErase


@attrs.frozen
class BackendKind:
    """One kind of backend a plugin can register.

    ``name`` is also the configuration key that selects a backend of this kind and the
    :class:`~lightmem_hookspecs.BackendRegistrar` method that registers one (in
    ``lightmem_register_backends``); ``hook`` is the kind's own registration hook, deprecated
    since contract 1.7 but still called (``""`` for a kind added later: adding a kind takes
    its row here and its typed registrar method, nothing else); ``protocol`` is what the
    factory must return; ``retriever`` says whether the kind can be an element of the
    retrieval chain (and how it is queried: ``"vector"`` by the query's embedding, ``"text"``
    by its text, ``"graph"`` by the entities its text names); ``capabilities`` are the
    optional Protocols a backend of the kind may also implement, each a runtime-checkable
    Protocol the core tests for with ``isinstance`` and uses where it is there.
    """

    name: str
    hook: str
    protocol: type
    description: str
    retriever: str | None = None
    capabilities: tuple[type, ...] = ()


KINDS: tuple[BackendKind, ...] = (
    BackendKind(
        "record_store",
        "lightmem_register_record_stores",
        RecordStore,
        "the system of record: message journal, extraction batches, entries, history, usage",
        capabilities=(EntryFacets, EntryPositions, EntryRestore, ScopeErase),
    ),
    BackendKind(
        "pre_compressor",
        "lightmem_register_pre_compressors",
        PreCompressor,
        "drops low-information tokens before messages are stored (a chain, in order)",
        capabilities=(Closeable,),
    ),
    BackendKind(
        "topic_segmenter",
        "lightmem_register_topic_segmenters",
        TopicSegmenter,
        "cuts the sensory buffer into topic segments",
        capabilities=(Closeable,),
    ),
    BackendKind(
        "memory_manager",
        "lightmem_register_memory_managers",
        MemoryManager,
        "the LLM that extracts facts and decides updates",
        capabilities=(SchemaInPrompt, CacheStats, AnswerLimit, Closeable),
    ),
    BackendKind(
        "text_embedder",
        "lightmem_register_text_embedders",
        TextEmbedder,
        "turns texts into vectors for the vector stores and the update queue",
        capabilities=(Closeable,),
    ),
    BackendKind(
        "multimodal_embedder",
        "lightmem_register_multimodal_embedders",
        MultimodalEmbedder,
        "turns images and texts into vectors of one space for image memory",
        capabilities=(Closeable,),
    ),
    BackendKind(
        "embedding_retriever",
        "lightmem_register_embedding_retrievers",
        EmbeddingRetriever,
        "a vector store (retrieval chain element, queried by the query's embedding)",
        retriever="vector",
        capabilities=(VectorBulkLoad, VectorRecreate, IndexCompaction, EveryStrategy),
    ),
    BackendKind(
        "context_retriever",
        "lightmem_register_context_retrievers",
        ContextRetriever,
        "a lexical index or any text retriever (retrieval chain element, queried by text)",
        retriever="text",
        capabilities=(TextBulkLoad, TextReset, IndexCompaction, EveryStrategy),
    ),
    BackendKind(
        "graph_memory",
        "lightmem_register_graph_memories",
        GraphMemory,
        "an entity/relation graph (retrieval chain element: entities the query names seed a walk)",
        retriever="graph",
        capabilities=(IndexCompaction,),
    ),
    BackendKind(
        "reranker",
        "lightmem_register_rerankers",
        Reranker,
        "reorders the fused hits (a chain, in order)",
        capabilities=(TopOnly, Closeable),
    ),
)

#: Kind names, in pipeline order.
BACKEND_KINDS: tuple[str, ...] = tuple(k.name for k in KINDS)
#: Kind name -> the Protocol its backends implement.
PROTOCOLS: dict[str, type] = {k.name: k.protocol for k in KINDS}
#: Kind name -> its table row.
KINDS_BY_NAME: dict[str, BackendKind] = {k.name: k for k in KINDS}
#: Kinds that can be elements of the retrieval chain.
RETRIEVER_KINDS: tuple[str, ...] = tuple(k.name for k in KINDS if k.retriever)
