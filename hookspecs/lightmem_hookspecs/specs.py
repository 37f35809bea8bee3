"""The LightMem hook specifications: the whole contract between the core and plugins.

All hooks are called with keyword arguments. Implementations run last-registered-first, but
the core never depends on that order: the configuration decides which backends run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .markers import hookspec

if TYPE_CHECKING:
    from .types import (
        EntryChange,
        MemoryEntry,
        Message,
        Operation,
        QueryContext,
        Register,
        SearchHit,
        Segment,
    )

# -------------------------------------------------------------------------
# Registration hooks: called once per plugin manager, at discovery time. They only record
# names, options classes and factories; they must not import heavy libraries or build models.
# -------------------------------------------------------------------------


@hookspec
def lightmem_register_pre_compressors(register: Register) -> None:
    """Register pre-compression backends (``pre_compressor`` in the configuration).

    Call ``register(name, factory, options=OptionsClass, description=...)`` once per backend.
    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.PreCompressor`.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_topic_segmenters(register: Register) -> None:
    """Register topic segmentation backends (``topic_segmenter`` in the configuration).

    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.TopicSegmenter`.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_memory_managers(register: Register) -> None:
    """Register LLM backends (``memory_manager`` in the configuration).

    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.MemoryManager`.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_text_embedders(register: Register) -> None:
    """Register text embedding backends (``text_embedder`` in the configuration).

    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.TextEmbedder`.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_multimodal_embedders(register: Register) -> None:
    """Register image embedding backends (``multimodal_embedder`` in the configuration).

    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.MultimodalEmbedder`.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_embedding_retrievers(register: Register) -> None:
    """Register vector store backends (``embedding_retriever`` in the configuration).

    ``factory(options, context)`` must return an :class:`~lightmem_hookspecs.EmbeddingRetriever`.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_context_retrievers(register: Register) -> None:
    """Register lexical retrieval backends (``context_retriever`` in the configuration).

    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.ContextRetriever`.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_graph_memories(register: Register) -> None:
    """Register graph memory backends (``graph_memory`` in the configuration).

    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.GraphMemory`.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_rerankers(register: Register) -> None:
    """Register rerankers (``reranker`` in the configuration).

    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.Reranker`.

    :param register: the registration callback bound to this kind and this plugin.
    """


# -------------------------------------------------------------------------
# Broadcast hooks: called at stage boundaries for every registered plugin. Return values are
# ignored; a hook that may adjust the flow says which argument it may change in place.
# -------------------------------------------------------------------------


@hookspec
def lightmem_messages_normalized(messages: list[Message]) -> None:
    """Called after a call's messages were validated, time-stamped and given ids.

    Implementations may replace, drop or reorder items of ``messages`` in place; the journal
    stores what is left.

    :param messages: the normalized messages of one ``add_memory`` call.
    """


@hookspec
def lightmem_segments_ready(segments: list[Segment]) -> None:
    """Called when the sensory buffer was cut into topic segments, before they are batched.

    Implementations may adjust ``segments`` in place.

    :param segments: the topic segments cut from the sensory buffer.
    """


@hookspec
def lightmem_batch_extracted(segments: Sequence[Segment], entries: list[MemoryEntry]) -> None:
    """Called when a short-term batch became memory entries, before they are stored.

    Implementations may edit ``entries`` in place (add metadata, drop entries).

    :param segments: the topic segments of the flushed batch.
    :param entries: the entries about to be stored.
    """


@hookspec
def lightmem_entries_stored(entries: Sequence[MemoryEntry]) -> None:
    """Called after entries were committed to the record store and indexed. Observe only.

    :param entries: the entries just stored.
    """


@hookspec
def lightmem_entries_changed(changes: Sequence[EntryChange]) -> None:
    """Called after an update pass changed, superseded or deleted entries. Observe only.

    :param changes: one record per changed entry.
    """


@hookspec
def lightmem_query_prepared(query: QueryContext) -> None:
    """Called before a retrieval runs. Implementations may change ``query`` in place.

    :param query: the query text, limit, strategy and filter.
    """


@hookspec
def lightmem_results_ready(query: QueryContext, hits: list[SearchHit]) -> None:
    """Called with the final hits of a retrieval. Implementations may reorder or drop hits.

    :param query: the query as it ran.
    :param hits: the hits about to be returned, best first.
    """


# -------------------------------------------------------------------------
# Wrapper hook: cross-cutting work (usage accounting, tracing, timing).
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def lightmem_run_operation(operation: Operation) -> Any:
    """Run one unit of work (``operation.call()``) and return its result.

    The core provides the implementation that runs it. Plugins add ``wrapper=True``
    implementations around it to time, trace or account for it; after ``yield`` the
    ``operation.usage`` counters are filled in. Operation names: ``add_memory``, ``retrieve``,
    ``compress``, ``segment``, ``extract``, ``embed``, ``llm.complete``, ``update``.

    Stops at the first non-None result (``firstresult``).

    :param operation: what is being run, by which backend, with which details.
    """
