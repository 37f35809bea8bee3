"""The LightMem hook specifications: the whole contract between the core and plugins.

All hooks are called with keyword arguments. Implementations run last-registered-first, but
the core never depends on that order: the configuration decides which backends run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .markers import hookspec

if TYPE_CHECKING:
    from .context import Register
    from .registrar import BackendRegistrar
    from .types import (
        EntryChange,
        HookContext,
        MemoryEntry,
        Message,
        Operation,
        QueryContext,
        SearchHit,
        Segment,
    )

# -------------------------------------------------------------------------
# Registration hooks: called once per plugin manager, at discovery time. They only record
# names, options classes and factories; they must not import heavy libraries or build models.
# -------------------------------------------------------------------------


@hookspec
def lightmem_register_backends(registrar: BackendRegistrar) -> None:
    """Register the backends this plugin provides, of any kind.

    Call one method of ``registrar`` per backend; the methods are named after the kinds (the
    configuration keys that select a backend of that kind), e.g.
    ``registrar.text_embedder(name, factory, options=OptionsClass, description=...)``, and
    typed with the Protocol the factory must return. ``factory(options, context)`` runs only
    when a configuration selects the backend, so heavy imports belong inside it.
    ``registrar.add(kind, name, factory, ...)`` takes the kind by name.

    :param registrar: the :class:`~lightmem_hookspecs.BackendRegistrar` bound to this plugin.
    """


@hookspec
def lightmem_register_pre_compressors(register: Register) -> None:
    """Register pre-compression backends (``pre_compressor`` in the configuration).

    Call ``register(name, factory, options=OptionsClass, description=...)`` once per backend.
    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.PreCompressor`.

    Deprecated since contract 1.7: implement ``lightmem_register_backends`` and call
    ``registrar.pre_compressor(name, factory, options=..., description=...)``. Still called,
    with a ``DeprecationWarning`` naming the plugin.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_topic_segmenters(register: Register) -> None:
    """Register topic segmentation backends (``topic_segmenter`` in the configuration).

    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.TopicSegmenter`.

    Deprecated since contract 1.7: implement ``lightmem_register_backends`` and call
    ``registrar.topic_segmenter(name, factory, options=..., description=...)``. Still called,
    with a ``DeprecationWarning`` naming the plugin.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_memory_managers(register: Register) -> None:
    """Register LLM backends (``memory_manager`` in the configuration).

    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.MemoryManager`.

    Deprecated since contract 1.7: implement ``lightmem_register_backends`` and call
    ``registrar.memory_manager(name, factory, options=..., description=...)``. Still called,
    with a ``DeprecationWarning`` naming the plugin.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_text_embedders(register: Register) -> None:
    """Register text embedding backends (``text_embedder`` in the configuration).

    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.TextEmbedder`.

    Deprecated since contract 1.7: implement ``lightmem_register_backends`` and call
    ``registrar.text_embedder(name, factory, options=..., description=...)``. Still called,
    with a ``DeprecationWarning`` naming the plugin.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_multimodal_embedders(register: Register) -> None:
    """Register text-and-image embedding backends (``multimodal_embedder`` in the configuration).

    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.MultimodalEmbedder`.

    Deprecated since contract 1.7: implement ``lightmem_register_backends`` and call
    ``registrar.multimodal_embedder(name, factory, options=..., description=...)``. Still called,
    with a ``DeprecationWarning`` naming the plugin.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_embedding_retrievers(register: Register) -> None:
    """Register vector store backends (``embedding_retriever`` in the configuration).

    ``factory(options, context)`` must return an :class:`~lightmem_hookspecs.EmbeddingRetriever`.

    Deprecated since contract 1.7: implement ``lightmem_register_backends`` and call
    ``registrar.embedding_retriever(name, factory, options=..., description=...)``. Still called,
    with a ``DeprecationWarning`` naming the plugin.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_context_retrievers(register: Register) -> None:
    """Register lexical retrieval backends (``context_retriever`` in the configuration).

    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.ContextRetriever`.

    Deprecated since contract 1.7: implement ``lightmem_register_backends`` and call
    ``registrar.context_retriever(name, factory, options=..., description=...)``. Still called,
    with a ``DeprecationWarning`` naming the plugin.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_graph_memories(register: Register) -> None:
    """Register graph memory backends (``graph_memory`` in the configuration).

    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.GraphMemory`.

    Deprecated since contract 1.7: implement ``lightmem_register_backends`` and call
    ``registrar.graph_memory(name, factory, options=..., description=...)``. Still called,
    with a ``DeprecationWarning`` naming the plugin.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_rerankers(register: Register) -> None:
    """Register rerankers (``reranker`` in the configuration).

    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.Reranker`.

    Deprecated since contract 1.7: implement ``lightmem_register_backends`` and call
    ``registrar.reranker(name, factory, options=..., description=...)``. Still called,
    with a ``DeprecationWarning`` naming the plugin.

    :param register: the registration callback bound to this kind and this plugin.
    """


@hookspec
def lightmem_register_record_stores(register: Register) -> None:
    """Register record stores (``record_store`` in the configuration): the system of record of
    a memory (message journal, extraction batches, entries, history, usage).

    ``factory(options, context)`` must return a :class:`~lightmem_hookspecs.RecordStore`. The
    core builds it first, before every other backend. A store that several processes may share
    at once (a server engine) sets ``shared = True`` on the object it returns: the memory then
    takes no lock on its directory.

    Deprecated since contract 1.7: implement ``lightmem_register_backends`` and call
    ``registrar.record_store(name, factory, options=..., description=...)``. Still called,
    with a ``DeprecationWarning`` naming the plugin.

    :param register: the registration callback bound to this kind and this plugin.
    """


# -------------------------------------------------------------------------
# Observer and mutator hooks: called at stage boundaries for the hook plugins the memory's
# configuration selects (``hooks``), in the configured order. Return values are ignored; a
# hook that may adjust the flow says which argument it may change in place. Every hook also
# receives ``context`` (a :class:`~lightmem_hookspecs.HookContext`: the memory directory, the
# call's scope, the plugin's own options); an implementation may leave it out of its signature.
# -------------------------------------------------------------------------


@hookspec
def lightmem_messages_normalized(messages: list[Message], context: HookContext) -> None:
    """Called after a call's messages were validated, time-stamped and given ids.

    Implementations may replace, drop or reorder items of ``messages`` in place; the journal
    stores what is left.

    :param messages: the normalized messages of one ``add_memory`` call.
    :param context: where the hook runs and the plugin's options.
    """


@hookspec
def lightmem_segments_ready(segments: list[Segment], context: HookContext) -> None:
    """Called when the sensory buffer was cut into topic segments, before they are batched.

    Implementations may change ``segments`` in place: replace a segment with one whose
    messages have edited ``content`` (e.g. a redaction: the edited text is what the journal
    keeps and what extraction and the stored entries see), drop messages from a segment, or
    drop whole segments (their messages leave the buffer and are marked ``dropped`` in the
    journal; they never become memories). Adding messages that were not in the buffer or
    moving them between scopes is not allowed and raises an error.

    :param segments: the topic segments cut from the sensory buffer.
    :param context: where the hook runs and the plugin's options.
    """


@hookspec
def lightmem_batch_extracted(
    segments: Sequence[Segment], entries: list[MemoryEntry], context: HookContext
) -> None:
    """Called when a short-term batch became memory entries, before they are stored.

    Implementations may edit ``entries`` in place (add metadata, change text, drop entries);
    what is left is stored and indexed.

    :param segments: the topic segments of the flushed batch.
    :param entries: the entries about to be stored.
    :param context: where the hook runs and the plugin's options.
    """


@hookspec
def lightmem_entries_stored(entries: Sequence[MemoryEntry], context: HookContext) -> None:
    """Called after entries were committed to the record store and indexed, so every search
    finds them: the text indexes and graphs hold them, and their vectors are written (in one
    batch with other new entries, see ``vector_batch_texts``) before the next search, update
    pass or close. Observe only.

    :param entries: the entries just stored.
    :param context: where the hook runs and the plugin's options.
    """


@hookspec
def lightmem_entries_changed(changes: Sequence[EntryChange], context: HookContext) -> None:
    """Called after an update (an update pass or the application's ``update``/``delete``)
    changed, superseded or deleted entries. Observe only.

    :param changes: one record per changed entry.
    :param context: where the hook runs and the plugin's options.
    """


@hookspec
def lightmem_query_prepared(query: QueryContext, context: HookContext) -> None:
    """Called before a retrieval runs. Implementations may change ``query`` in place (its
    text, limit, strategy and filter); the retrieval runs with what they leave.

    :param query: the query text, limit, strategy and filter.
    :param context: where the hook runs and the plugin's options.
    """


@hookspec
def lightmem_results_ready(
    query: QueryContext, hits: list[SearchHit], context: HookContext
) -> None:
    """Called with the final hits of a retrieval. Implementations may reorder or drop hits
    in place; the caller receives what is left (at most ``query.limit``).

    :param query: the query as it ran.
    :param hits: the hits about to be returned, best first.
    :param context: where the hook runs and the plugin's options.
    """


# -------------------------------------------------------------------------
# Wrapper hook: cross-cutting work (usage accounting, tracing, timing).
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def lightmem_run_operation(operation: Operation, context: HookContext) -> Any:
    """Run one unit of work (``operation.call()``) and return its result.

    The core runs every unit of work through this hook: the public calls (``add_memory``,
    ``retrieve``, ``update``) and every backend call inside them (``compress``, ``segment``,
    ``extract``, ``llm.complete``, ``embed``, ``index``, ``search``, ``rerank``); the names are
    listed in :data:`~lightmem_hookspecs.OPERATION_NAMES`. Plugins add ``wrapper=True``
    implementations around it to time, trace or account for it: code before ``yield`` runs
    before the work, ``yield`` returns its result (or raises its error), and after it
    ``operation.usage`` holds the counters of the work, nested operations included. Wrappers
    of the plugins the configuration selects nest in the configured order (the first named is
    outermost). A non-wrapper implementation may run the call itself and return its result.

    Stops at the first non-None result (``firstresult``).

    :param operation: what is being run, by which backend, with which details.
    :param context: where the hook runs and the plugin's options.
    """
