"""One small Protocol per backend kind: what the core calls on a backend a factory returns."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from .graph import Entity, GraphHit, Relation, Validity
from .types import Completion, IndexRecord, Message, SearchFilter, SearchHit


@runtime_checkable
class PreCompressor(Protocol):
    """Drops low-information tokens from message texts.

    ``compress`` returns one string per input, in order. It never returns an empty string for a
    non-empty input (return the input instead) and never reorders the words it keeps.
    """

    def compress(self, texts: Sequence[str]) -> list[str]: ...


@runtime_checkable
class TopicSegmenter(Protocol):
    """Cuts a buffer of consecutive messages into topics.

    ``segment`` returns the sorted indices at which a new topic starts, each in
    ``range(1, len(messages))`` (index 0 always starts the first topic and is not returned).
    """

    def segment(self, messages: Sequence[Message]) -> list[int]: ...


@runtime_checkable
class MemoryManager(Protocol):
    """An LLM. The core owns the prompts; the backend only runs chat completions.

    ``messages`` are OpenAI-style ``{"role": ..., "content": ...}`` mappings. When
    ``json_schema`` is given the backend should constrain output to it where the endpoint
    supports that (JSON mode, a schema, a grammar) and may ignore it otherwise: the core
    validates and repairs what comes back. Transport errors (HTTP 429/5xx, time-outs) are
    retried by the backend a bounded number of times and then raised.

    Optional, for KV caching (configuration key ``kv_cache``): ``Completion.cached_tokens``
    counts the prompt tokens a cache held; a manager may also implement :class:`SchemaInPrompt`
    (the endpoint puts ``json_schema`` into the prompt it caches) and :class:`CacheStats` (its
    own cache counters in ``stats()["kv_cache"]``). It may declare its default answer limit
    (:class:`AnswerLimit`).
    """

    model_name: str

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        json_schema: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion: ...


@runtime_checkable
class TextEmbedder(Protocol):
    """Turns texts into fixed-size vectors.

    ``embed`` returns one vector of ``dimension`` floats per text (a list of lists or a 2-D
    numpy array), L2-normalised so a dot product is the cosine similarity.
    ``model_name`` identifies the model; vector stores record it to refuse a mismatch.
    """

    model_name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> Any: ...


@runtime_checkable
class MultimodalEmbedder(Protocol):
    """Turns texts and images into vectors of one space (a CLIP-family model).

    ``embed_texts`` returns one vector per text and ``embed_images`` one per image (each given
    as the bytes of an encoded file: PNG, JPEG ...), ``dimension`` floats each (a list of lists
    or a 2-D numpy array), L2-normalised, so that a text's dot product with an image is their
    similarity. ``model_name`` identifies the model.
    """

    model_name: str
    dimension: int

    def embed_texts(self, texts: Sequence[str]) -> Any: ...

    def embed_images(self, images: Sequence[bytes]) -> Any: ...


@runtime_checkable
class EmbeddingRetriever(Protocol):
    """A vector index over memory entries.

    ``open`` is called once before anything else with the embedder's model name and
    dimension; it creates the collection or checks that an existing one was built with the
    same model and dimension (and raises otherwise). It never deletes existing data.
    ``search`` returns ``(id, score)`` pairs, best first, score = cosine similarity, honouring
    every field of ``filter``. ``upsert`` replaces records with the same id.

    A store may also implement :class:`VectorRecreate` (the collection dropped and opened
    empty for another model), which ``LightMemory.reindex()`` uses to move it to a new
    embedder, :class:`VectorBulkLoad` (many records written in one pass), which ``lightmem
    import`` uses, and :class:`IndexCompaction` (its files rewritten without the bytes of
    removed records), which an erase uses, each where it is there.
    """

    def open(self, *, model_name: str, dimension: int) -> None: ...

    def upsert(self, records: Sequence[IndexRecord]) -> None: ...

    def search(
        self, vector: Sequence[float], *, limit: int, filter: SearchFilter | None = None
    ) -> list[tuple[str, float]]: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def count(self) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class ContextRetriever(Protocol):
    """A lexical index (e.g. BM25) over memory entries, or any retriever that searches by text.

    The core rebuilds it from the record store when ``count()`` differs from the number of
    active entries, so an in-memory index survives restarts. ``search`` returns ``(id, score)``
    pairs, best first, only ids whose payload passes ``filter``; higher score = better.
    A third-party retriever registers as this kind and joins the retrieval chain
    (``retrieval.retrievers`` in the configuration) with a fusion weight. An index may also
    implement :class:`TextBulkLoad` (many records indexed in one pass), which ``lightmem
    import`` uses, :class:`TextReset` (emptied for a rebuild), which ``LightMemory.reindex()``
    uses, and :class:`IndexCompaction` (its files rewritten without the bytes of removed
    records), which an erase uses, each where it is there.
    """

    def index(self, records: Sequence[IndexRecord]) -> None: ...

    def search(
        self, query: str, *, limit: int, filter: SearchFilter | None = None
    ) -> list[tuple[str, float]]: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def count(self) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class VectorBulkLoad(Protocol):
    """What a vector store (:class:`EmbeddingRetriever`) may also offer: many records written
    in one pass, for ``lightmem import``, which otherwise calls ``upsert`` once per chunk.

    A store gains by it where loading everything first and building its index once is much
    faster than growing the index record by record (pgvector's HNSW graph, for one).
    """

    def bulk_upsert(self, chunks: Iterable[Sequence[IndexRecord]]) -> int:
        """Write the records of every chunk, reading ``chunks`` once, with what ``upsert`` of
        each chunk in turn would leave: records with ids already stored are replaced, the
        others kept, and when it returns every record is found by ``search`` with its
        payload's filters and counted by ``count``. The caller gives an id at most once in
        all the chunks. Returns the number of records written."""
        ...


@runtime_checkable
class TextBulkLoad(Protocol):
    """What a text index (:class:`ContextRetriever`) may also offer: many records indexed in
    one pass, for ``lightmem import``, which otherwise calls ``index`` once per chunk.

    An index gains by it where loading the texts first and building its structures (an
    inverted index, term statistics) once is much faster than updating them per record.
    """

    def bulk_index(self, chunks: Iterable[Sequence[IndexRecord]]) -> int:
        """Index the records of every chunk, reading ``chunks`` once, with what ``index`` of
        each chunk in turn would leave: records with ids already indexed are replaced (their
        old words no longer find them), the others kept, and when it returns every record is
        found by ``search`` with its payload's filters and counted by ``count``. The caller
        gives an id at most once in all the chunks. Returns the number of records indexed."""
        ...


@runtime_checkable
class VectorRecreate(Protocol):
    """What a vector store (:class:`EmbeddingRetriever`) may also offer: its collection dropped
    and opened empty for another embedding model, for ``LightMemory.reindex()``.

    Without it a reindex opens the store with the current embedder (``open``), which refuses a
    collection built with another model or dimension: moving such a store to a new embedder
    then means deleting its data by hand.
    """

    def recreate(self, *, model_name: str, dimension: int) -> None:
        """Drop this collection (every record, and the model and dimension it was opened
        with) and open it again, empty, for ``model_name`` and ``dimension``, as ``open`` of a
        new collection would: afterwards ``count`` is 0, records of ``dimension`` floats are
        written and found, and a later ``open`` with this model and dimension keeps them. Other
        collections of the same path or server are left as they are. Called only by a
        reindex, never implicitly."""
        ...


@runtime_checkable
class TextReset(Protocol):
    """What a text index (:class:`ContextRetriever`) may also offer: emptied for a rebuild,
    for ``LightMemory.reindex()``, which then indexes every active entry again.

    Without it a reindex deletes every entry's id from the index before indexing them again;
    an index that keeps files it cannot read any more (damaged) needs this to start afresh.
    """

    def reset(self) -> str | os.PathLike[str] | None:
        """Empty the index: afterwards ``count`` is 0, nothing is found, and records indexed
        are found as in a new index. A damaged file may be moved aside and kept rather than
        deleted: returns where it went (the reindex logs it), ``None`` where nothing was
        moved."""
        ...


@runtime_checkable
class IndexCompaction(Protocol):
    """What an index (a vector store, a text index or a graph) may also offer: its files
    rewritten so that no byte of a removed record remains, for an erase (``erase_scope``),
    which calls it on every index that has it after removing the tenant's records, and lists
    those indexes in the receipt's ``compacted``.

    Without it the removed records are gone from every answer, but their bytes may stay in
    the index's files until the engine reuses the space.
    """

    def compact(self) -> None:
        """Rewrite the index's storage without the bytes of deleted records (a ``VACUUM``, a
        rebuilt shard, ...). The records kept are unchanged: ``count`` and every search give
        what they gave before, and a reopened persistent index still holds them."""
        ...


@runtime_checkable
class SchemaInPrompt(Protocol):
    """What a memory manager (:class:`MemoryManager`) may also declare: the endpoint puts the
    ``json_schema`` it is given into the prompt it caches (KV caching, ``kv_cache``).

    Where ``schema_in_prompt`` is ``True`` and ``kv_cache`` is on, the core sends each request
    kind's one general schema, the same in every call, so the cached prompt prefix stays the
    same from call to call; otherwise it may send a stricter schema per call.
    """

    #: ``True``: the endpoint puts ``json_schema`` into the prompt it caches.
    schema_in_prompt: bool


@runtime_checkable
class CacheStats(Protocol):
    """What a memory manager (:class:`MemoryManager`) may also offer: its own KV cache
    counters, shown under ``backend`` in ``stats()["kv_cache"]`` beside the core's own."""

    def cache_stats(self) -> dict[str, Any]:
        """The backend's cache counters as a JSON-serialisable mapping (numbers, strings, lists
        and mappings of them), read at the time of the call, without changing them; safe to
        call at any time, before the first completion too."""
        ...


@runtime_checkable
class Closeable(Protocol):
    """What a backend of a kind whose Protocol has no ``close`` (a pre-compressor, a topic
    segmenter, a memory manager, an embedder, a reranker) may also offer: ``close()``
    releases what it holds (an HTTP client's connections, a worker process, a loaded model).

    The core calls it once, when the memory closes, after the last call to the backend; an
    exception it raises is logged, and the other backends are closed all the same.
    """

    def close(self) -> None:
        """Release the backend's resources. Called once; the backend is not used after it."""
        ...


@runtime_checkable
class EveryStrategy(Protocol):
    """What a retriever (an embedding or a context retriever) may also declare: with
    ``every_strategy`` ``True`` it runs under every ``retrieve_strategy`` of a search, not only
    under the one that selects its kind (``embedding``: the embedding retrievers; ``context``:
    the context retrievers; ``hybrid``: every element). For a retriever whose hits no other
    element finds, e.g. images found by their pixels, which a ``context`` search would
    otherwise know only by their captions.
    """

    #: ``True``: the retrieval stage runs this retriever whatever the search's strategy.
    every_strategy: bool


@runtime_checkable
class TopOnly(Protocol):
    """What a reranker (:class:`Reranker`) may also declare: with ``top_only`` ``True`` it
    needs no more than the first ``limit`` hits it receives (it reorders those, e.g. by
    recency, and its answer for ``hits`` is its answer for ``hits[:limit]``).

    When every reranker of the chain says so, the core loads the entries of the first
    ``limit`` fused hits only and hands those over: a search reads ``limit`` entries instead of
    the whole pool, and recall at ``limit`` is the fused list's. Otherwise the first reranker
    receives the whole pool, as its Protocol says.
    """

    #: ``True``: the reranker's answer depends on the first ``limit`` hits it is given only.
    top_only: bool


@runtime_checkable
class AnswerLimit(Protocol):
    """What a memory manager (:class:`MemoryManager`) may also declare: ``max_tokens``, the
    answer-token limit it applies to a ``complete`` call that gives none (``None``: it sets
    none, the endpoint's own applies).

    The extraction sizes its requests by it: a call that also asks for graph relations may use
    a few times this limit, and an answer cut at it is split over smaller calls. Without it the
    core knows no limit but the one a cut answer reports.
    """

    #: The answer limit of a call without ``max_tokens`` (a positive int), or ``None``.
    max_tokens: int | None


@runtime_checkable
class GraphMemory(Protocol):
    """An entity/relation graph derived from memory entries (a Neo4j, Kùzu, FalkorDB... store).

    The core builds :class:`Entity` and :class:`Relation` values (see ``lightmem_hookspecs.graph``
    for their semantics) and owns the ids; the backend stores, closes, resolves and walks.

    ``index(entry_ids, entities, relations)`` replaces everything derived from ``entry_ids`` by
    ``relations``. Every relation's ``entry_id`` is one of them and its ``subject`` and
    ``object`` are entities given in ``entities`` or already stored, else ``ValueError`` and
    nothing changes. An entry may have no relation; it is recorded as indexed all the same.
    Entities are merged by id (:func:`~lightmem_hookspecs.graph.merge_entity`). Exclusive
    relations are then closed or reopened per
    :func:`~lightmem_hookspecs.graph.close_contradicted`, and entities that no stored relation
    names are dropped. The change is atomic: after a crash all of it or none of it is there.
    ``delete(entry_ids)`` forgets those entries the same way (unknown ids are ignored).
    ``entry_ids()`` is the set of indexed entries (the core re-indexes what is missing).

    ``resolve(names)`` returns the entities whose normalised name or alias
    (:func:`~lightmem_hookspecs.graph.normalize_name`) equals a normalised name given, and
    ``entities()`` every entity; both restricted to the scope fields of ``filter`` (exact match,
    ``None`` does not restrict). ``relations()`` lists stored relations, closed ones included
    unless ``validity`` says otherwise, optionally only those of ``entry_ids``; ``filter`` and
    ``validity`` apply per :func:`~lightmem_hookspecs.graph.usable`.

    ``search(seeds, ...)`` walks from the seed entity ids and returns the entries reached,
    exactly as :func:`~lightmem_hookspecs.graph.walk` ranks them (scores, order, paths), only
    through relations that pass every field of ``filter`` and ``validity``.
    ``entry_counts(entity_ids)`` gives, per entity id, how many distinct entries its relations
    passing ``filter`` come from (:func:`~lightmem_hookspecs.graph.entry_counts`; unknown ids
    count 0): how specific an entity is, for weighting it in retrieval.
    ``count()`` is the number of stored relations. Data persists across ``close()`` and a new
    instance on the same storage, where the backend is persistent.
    """

    def index(
        self,
        entry_ids: Sequence[str],
        entities: Sequence[Entity],
        relations: Sequence[Relation],
    ) -> None: ...

    def delete(self, entry_ids: Sequence[str]) -> None: ...

    def entry_ids(self) -> set[str]: ...

    def resolve(
        self, names: Sequence[str], *, filter: SearchFilter | None = None
    ) -> list[Entity]: ...

    def entities(self, *, filter: SearchFilter | None = None) -> list[Entity]: ...

    def relations(
        self,
        *,
        entry_ids: Sequence[str] | None = None,
        filter: SearchFilter | None = None,
        validity: Validity | None = None,
    ) -> list[Relation]: ...

    def search(
        self,
        seeds: Sequence[str],
        *,
        limit: int,
        hops: int = 2,
        fan_out: int = 20,
        filter: SearchFilter | None = None,
        validity: Validity | None = None,
    ) -> list[GraphHit]: ...

    def entry_counts(
        self, entity_ids: Sequence[str], *, filter: SearchFilter | None = None
    ) -> dict[str, int]: ...

    def count(self) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class Reranker(Protocol):
    """Reorders retrieval hits for a query; returns ``min(limit, len(hits))`` hits, best first.

    What it receives: ``hits`` best first. The first reranker of the chain gets the fused pool:
    up to ``pool_size`` hits (``retrieval.pool_size``; by default ``max(5 * limit, 50)``), each
    with its ``entry`` loaded, ``score`` = the fused score (reciprocal-rank fusion: a sum of
    ``weight / (k + rank)``, small positive numbers; ``weighted`` fusion: a weighted sum of
    min-max normalised scores in ``[0, sum of weights]``), and ``scores`` / ``ranks`` holding
    every retriever's own score and 1-based rank by its label (a hit a retriever did not
    return has no key for it). Each later reranker gets what the previous one returned.

    What it returns: hits taken from ``hits`` (same objects or evolved copies; never ids it
    was not given), ``min(limit, len(hits))`` of them (it reorders, it does not filter), best
    first, each keeping its ``entry`` and the ``scores`` / ``ranks`` / ``paths`` it came with
    (``paths``: how a graph retriever reached the entry). It may set ``score`` to its own
    relevance score, a finite number, and then returns hits in decreasing ``score``; the core
    records each reranker's 1-based output rank in ``ranks[<its name>]`` and, when it changed
    ``score``, that score in ``scores[<its name>]``. The order depends on the query. The core
    refuses (``BackendError``) an answer with a non-finite score or a hit that lost its entry,
    a retriever's score or rank, or its paths.
    """

    def rerank(self, query: str, hits: Sequence[SearchHit], *, limit: int) -> list[SearchHit]: ...
