"""``LightMemory``: the facade applications use; it drives the pipeline through the registry."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import attrs
from lightmem_hookspecs import (
    Batch,
    ContextRetriever,
    EmbeddingRetriever,
    EntryChange,
    GraphMemory,
    MemoryEntry,
    QueryContext,
    RecordStore,
    Scope,
    SearchFilter,
    SearchHit,
    Usage,
)

from .backends import (
    AccountedEmbedder,
    AccountedLLM,
    Backends,
    UsageBooking,
    build_record_store,
)
from .buildchecks import check_embedding_dims
from .config import LightMemConfig, ResolvedConfig, load_config_file, resolve
from .errors import InputError, guard_public_api
from .hookchain import HookChain
from .images import has_parts
from .owner import DirectoryOwner, claim_memory_dir
from .pipeline import expiry
from .pipeline.edit import EntryEditor
from .pipeline.index import Indexer
from .pipeline.ingest import AddResult, Ingestion
from .pipeline.retrieval import Retrieval
from .pipeline.runtime import Runtime
from .plugins import PluginHost
from .queries import build_filter, check_entry_id, check_limit, check_query, query_scope
from .scope import check_text, is_unscoped, make_scope
from .store import SQLiteRecordStore

if TYPE_CHECKING:
    from .llm.prompts import Prompts
    from .pipeline.erase import EraseReceipt
    from .pipeline.estimate import IngestEstimate, IngestionPlan

log = logging.getLogger("lightmem")

T = TypeVar("T")

__all__ = ["AddResult", "LightMemory", "format_entry"]


def format_entry(entry: MemoryEntry) -> str:
    """The original LightMem's retrieval string: time stamp, weekday, then the memory."""
    if entry.time_stamp is None:
        return entry.memory
    return f"{entry.time_stamp:%Y-%m-%d %H:%M} {entry.weekday} {entry.memory}"


class _NoOwner:
    """A memory on a store shared by several processes owns no directory."""

    def release(self) -> None:
        pass


def _open_record_store(resolved: ResolvedConfig) -> tuple[RecordStore, DirectoryOwner | _NoOwner]:
    """The record store, and the lock on the memory directory unless the store is shared by
    several processes (``shared = True`` on it). The embedded SQLite store is opened only
    once its directory is owned."""
    config, selected = resolved.config, resolved.record_store
    if selected is None or selected.name == "sqlite":
        owner: DirectoryOwner | _NoOwner = claim_memory_dir(config)
        try:
            if selected is None:  # the default: the built-in SQLite store
                return SQLiteRecordStore(config.db_path), owner
            return build_record_store(resolved, selected), owner
        except BaseException:
            owner.release()
            raise
    store = build_record_store(resolved, selected)
    if getattr(store, "shared", False):
        return store, _NoOwner()
    try:
        return store, claim_memory_dir(config)
    except BaseException:
        store.close()
        raise


class LightMemory:
    """Long-term memory: ``add_memory`` messages, ``retrieve`` what is relevant to a query.

    Build it with :meth:`from_config` (the original LightMem configuration dictionary, a
    :class:`LightMemConfig`, a :class:`~lightmem_core.config.ResolvedConfig` from
    :func:`~lightmem_core.config.resolve`, or a JSON/TOML/YAML file) or with no arguments for
    the embedded default (MiniLM + local Qdrant + BM25 + hybrid retrieval under
    ``./lightmem_data``).

    The facade composes the pipeline's stages (``lightmem_core.pipeline``: ingestion,
    indexing, retrieval) and the update passes; it holds no pipeline logic of its own.
    """

    def __init__(
        self,
        config: Mapping[str, Any] | LightMemConfig | ResolvedConfig | None = None,
        *,
        host: PluginHost | None = None,
        memory_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(config, ResolvedConfig):
            if memory_dir is not None or (host is not None and host is not config.host):
                raise InputError(
                    "config: a resolved configuration already holds its memory_dir and its "
                    "plugin host; pass neither memory_dir nor host with it (or resolve the "
                    "configuration with them)"
                )
            resolved = config
        else:
            raw = config
            if memory_dir is not None:
                if isinstance(raw, LightMemConfig):
                    raw = attrs.evolve(raw, memory_dir=str(memory_dir))
                else:
                    raw = {**dict(raw or {}), "memory_dir": str(memory_dir)}
            resolved = resolve(raw, host or PluginHost())
        self.host: PluginHost = resolved.host
        self.resolved = resolved
        self.config = resolved.config
        booking = UsageBooking()  # the core's own wrapper: books each top-level operation
        hooks = HookChain(
            self.host, self.config.hooks, memory_dir=self.config.memory_dir, core=[booking]
        )
        store, self._owner = _open_record_store(resolved)
        try:
            booking.store = store
            backends = Backends(resolved, hooks)
            check_embedding_dims(self.config, backends)
        except BaseException:
            store.close()
            self._owner.release()
            raise
        self._rt = Runtime(self.config, store, backends, hooks)
        self._rt.indexer = Indexer(self._rt)
        self._ingestion = Ingestion(self._rt)
        self._retrieval = Retrieval(self._rt)
        self._editor = EntryEditor(self._rt)
        self._lock = self._rt.lock
        if store.pending_batches():
            self._ingestion.retrier.wake()  # left over from an earlier run

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any]
        | LightMemConfig
        | ResolvedConfig
        | str
        | os.PathLike[str]
        | None = None,
        *,
        host: PluginHost | None = None,
    ) -> LightMemory:
        """Build from the original LightMem configuration dictionary or a config file path."""
        if isinstance(config, str | os.PathLike):
            config = load_config_file(config)
        return cls(config, host=host)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close every backend (LLM client, embedder, indexes) and the record store."""
        self._ingestion.retrier.close()
        with self._lock:
            try:
                self._rt.indexer.flush()  # queued vectors (else: embedded on the next open)
            finally:
                try:
                    self._rt.close()
                    self._rt.backends.close()
                    self._rt.store.close()
                finally:
                    self._owner.release()

    def __enter__(self) -> LightMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- collaborators (read-only views) ---------------------------------------------------

    @property
    def store(self) -> RecordStore:
        """The record store (system of record)."""
        return self._rt.store

    @property
    def backends(self) -> Backends:
        """The configured backends, built on demand."""
        return self._rt.backends

    @property
    def hooks(self) -> HookChain:
        """The hook plugins this memory runs, in order."""
        return self._rt.hooks

    @property
    def embedder(self) -> AccountedEmbedder | None:
        """The configured text embedder (its calls are counted as ``embed`` operations)."""
        return self._rt.embedder

    @property
    def llm(self) -> AccountedLLM | None:
        """The configured memory manager (its calls are counted), or ``None`` without an LLM."""
        return self._rt.llm

    @property
    def vector_index(self) -> EmbeddingRetriever | None:
        """The first vector store, holding every committed entry (queued vectors are written
        first)."""
        with self._lock:
            self._rt.indexer.flush()
            return self._rt.vector_index

    @property
    def text_index(self) -> ContextRetriever | None:
        indexes = self._rt.backends.text_indexes()
        return indexes[0] if indexes else None

    def warm_up(self) -> None:
        """Load the embedding model now, open the derived indexes (bringing them in line with
        the record store) and write the vectors waiting to be written, so the next search
        does the search alone (e.g. before timing ingestion or queries, or on a memory just
        reopened)."""
        embedder = self._rt.embedder
        if embedder is not None:
            embedder.warm_up()
        self.flush_vectors()

    def flush_vectors(self) -> int:
        """Write the vectors of committed entries still queued for the vector stores now (a
        search does it first anyway), e.g. so an ingestion's timing includes them. Returns
        how many were written."""
        with self._lock:
            self._rt.indexer.open()
            return self._rt.indexer.flush()

    def reindex(self) -> int:
        """Rebuild every derived index from the record store (e.g. after a model change).

        A vector store with ``recreate`` is dropped and created for the current embedder, so
        this is how a store built with another embedding model is moved to this one; the image
        index's images are embedded again from their files by the configured
        ``multimodal_embedder`` (a missing file is reported, its entry left out of it).
        """
        from .images import reembed_images

        with self._lock:
            n = self._rt.indexer.reindex()
            reembed_images(self._rt)
            return n

    # -- graph memory ----------------------------------------------------------------------

    def _graph(self) -> GraphMemory:
        graphs = self._rt.backends.graphs()
        if not graphs:
            raise InputError(
                "graph memory is off: set graph_mem: true and name a graph_memory backend "
                "(e.g. {'model_name': 'networkx'}) in the configuration"
            )
        self._rt.indexer.open()
        return graphs[0]

    def graph_show(
        self,
        entity: str,
        depth: int = 1,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> list[str]:
        """Lines describing the entity named ``entity`` (name or alias) and the relations
        within ``depth`` hops, with their validity and source entries (docs/graph.md)."""
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise InputError(f"depth: expected a positive integer, got {depth!r}")
        scope = SearchFilter(user_id=user_id, agent_id=agent_id, run_id=run_id)
        with self._lock:
            return self._rt.graph.show(self._graph(), entity, depth=depth, filter=scope)

    def graph_export(
        self,
        format: str = "json",
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """The graph (every entity and relation, closed ones included) as ``json`` or
        ``graphml`` text."""
        if format not in ("json", "graphml"):
            raise InputError(f"format: expected json or graphml, got {format!r}")
        scope = SearchFilter(user_id=user_id, agent_id=agent_id, run_id=run_id)
        with self._lock:
            return self._rt.graph.export(self._graph(), format, filter=scope)

    # -- ingestion -------------------------------------------------------------------------

    @overload
    def add_memory(
        self,
        messages: Any,
        force_segment: bool = ...,
        force_extract: bool = ...,
        *,
        user_id: str | None = ...,
        agent_id: str | None = ...,
        run_id: str | None = ...,
        dry_run: Literal[False] = ...,
        token_budget: int | None = ...,
    ) -> AddResult: ...

    @overload
    def add_memory(
        self,
        messages: Any,
        force_segment: bool = ...,
        force_extract: bool = ...,
        *,
        user_id: str | None = ...,
        agent_id: str | None = ...,
        run_id: str | None = ...,
        dry_run: Literal[True],
        token_budget: int | None = ...,
    ) -> IngestEstimate: ...

    def add_memory(
        self,
        messages: Any,
        force_segment: bool = False,
        force_extract: bool = False,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        dry_run: bool = False,
        token_budget: int | None = None,
    ) -> AddResult | IngestEstimate:
        """Add messages (a dict or a list of dicts with role, content, time_stamp).

        Messages enter the sensory buffer; when it holds ``sensory_buffer_tokens`` tokens (or
        ``force_segment``) it is cut into topic segments, which move to the short-term buffer;
        when that holds ``short_term_buffer_tokens`` tokens (or ``force_extract``) its segments
        are flushed as ONE extraction batch. Once this returns, the messages are in the
        journal: a crash or restart loses none of them.

        Returns an :class:`AddResult`. ``dry_run=True`` is :meth:`estimate`: it writes and
        spends nothing and returns an
        :class:`~lightmem_core.pipeline.estimate.IngestEstimate` instead.

        ``token_budget`` caps the LLM tokens this call spends (default: the configuration's
        ``llm_tokens_per_add``, unset: no cap): batches past it stay held in the journal for
        the next call of the scope or :meth:`retry` (see ``pipeline/budget.py``).
        """
        scope = make_scope(user_id, agent_id, run_id)
        images: list[Any] = []
        if self.config.multimodal_embedder is not None or has_parts(messages):
            from .images import split_images  # every image checked before anything is written

            enabled = self.config.multimodal_embedder is not None
            messages, images = split_images(messages, self.config.images, enabled)
        if dry_run:
            return self.estimate(
                messages,
                force_segment,
                force_extract,
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                token_budget=token_budget,
            )
        journaled = None
        if images:  # their entries exist before extraction can caption them
            from .images import image_index, store_image_entries

            index = image_index(self._rt)
            if index is not None:
                index.check()  # another multimodal embedder's index: refused before any write

            def journaled() -> object:
                return store_image_entries(self._rt, messages, images, scope)

        return self._ingestion.add(
            messages,
            scope,
            force_segment=force_segment,
            force_extract=force_extract,
            token_budget=token_budget,
            journaled=journaled,
        )

    def estimate(
        self,
        messages: Any,
        force_segment: bool = False,
        force_extract: bool = False,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        token_budget: int | None = None,
    ) -> IngestEstimate:
        """What ``add_memory`` with these arguments would spend: the LLM calls and prompt
        tokens, as an :class:`~lightmem_core.pipeline.estimate.IngestEstimate`. Writes and
        spends nothing (:meth:`plan` does the same over several calls)."""
        from .pipeline.budget import check_token_budget

        scope = make_scope(user_id, agent_id, run_id)
        check_token_budget(token_budget)
        return self.plan().add_memory(
            messages, scope, force_segment=force_segment, force_extract=force_extract
        )

    def plan(self) -> IngestionPlan:
        """An :class:`~lightmem_core.pipeline.estimate.IngestionPlan`: its ``add_memory(messages,
        scope, force_segment=..., force_extract=...)`` calls play ingestion forward without
        writing or spending anything, and return the running estimate of LLM calls and tokens."""
        from .pipeline.estimate import IngestionPlan

        return IngestionPlan(self._rt)

    def add(
        self,
        messages: Any,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> AddResult:
        """Add messages and flush every buffer at once (mem0-style): memories are searchable now."""
        return self.add_memory(
            messages,
            force_segment=True,
            force_extract=True,
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
        )

    def flush(
        self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> AddResult:
        """Segment and extract whatever the buffers hold: those of the scope named, or with no
        scope named, those of every scope (messages added with a ``user_id`` included)."""
        named = make_scope(user_id, agent_id, run_id)
        if not is_unscoped(named):
            return self.add([], **named.as_dict())
        store = self._rt.store
        buffered = [*store.journal("sensory"), *store.journal("short_term")]
        scopes = list(dict.fromkeys(r.message.scope for r in buffered)) or [named]
        results = [self.add([], **scope.as_dict()) for scope in scopes]
        usage = Usage()
        for result in results:
            usage.add(result.usage)
        return AddResult(
            messages_received=0,
            messages_added=0,
            entries_added=tuple(e for r in results for e in r.entries_added),
            batches_extracted=sum(r.batches_extracted for r in results),
            batches_pending=results[-1].batches_pending,
            usage=usage,
        )

    @property
    def prompts(self) -> Prompts:
        """The prompts this memory's LLM calls use (the configuration's overrides applied)."""
        return self._rt.prompts

    def retry(self) -> AddResult:
        """Retry every pending or failed extraction batch now, whatever its retry time."""
        return self._ingestion.retry()

    def pending_batches(self) -> list[Batch]:
        """Every extraction batch not extracted yet, oldest first: its state (``pending``,
        ``running``, ``failed``, ``held``, ``waiting_for_budget``), scope, attempts, last
        error and retry time (:class:`~lightmem_hookspecs.Batch`)."""
        return self._rt.store.batches()

    # -- retrieval -------------------------------------------------------------------------

    def search(
        self,
        query: str,
        limit: int = 10,
        *,
        strategy: str | None = None,
        filters: SearchFilter | Mapping[str, Any] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        retrievers: Sequence[str] | None = None,
    ) -> list[SearchHit]:
        """Structured retrieval: hits with the entry, fused score and each retriever's and
        reranker's score and rank (``hit.scores`` / ``hit.ranks``, by name).

        ``retrievers`` limits the search to those elements of the retrieval chain, by label
        (``["embedding", "context"]``: everything but the graph), e.g. to compare signals.
        """
        query, limit = check_query(query), check_limit(limit)
        search_filter = build_filter(
            filters, user_id, agent_id, run_id, require_scope=self.config.require_scope
        )
        strategy = strategy or self.config.retrieve_strategy or "hybrid"
        if not isinstance(strategy, str) or strategy not in ("embedding", "context", "hybrid"):
            raise InputError(f"strategy: expected embedding, context or hybrid, got {strategy!r}")
        ctx = QueryContext(query=query, limit=limit, strategy=strategy, filter=search_filter)
        scope = Scope(search_filter.user_id, search_filter.agent_id, search_filter.run_id)
        with self._lock, self._rt.hooks.scope(scope):
            hits = self._retrieval.search(ctx, retrievers)
        return expiry.live(hits, lambda h: h.entry)

    def retrieve(
        self,
        query: str,
        limit: int = 10,
        filters: SearchFilter | Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> list[str]:
        """The original API: the top memories as strings with time stamp and weekday."""
        hits = self.search(
            query, limit, filters=filters, user_id=user_id, agent_id=agent_id, run_id=run_id
        )
        return [format_entry(h.entry) for h in hits if h.entry is not None]

    # -- entries (mem0-style API) ----------------------------------------------------------

    def get(self, entry_id: str) -> MemoryEntry | None:
        """The entry; with graph memory on, its relations (validity included) are listed under
        ``metadata["graph"]``."""
        entry = self._rt.store.get_entry(check_entry_id(entry_id))
        if expiry.expired(entry):
            return None
        graphs = self._rt.backends.graphs() if entry is not None else []
        if entry is None or not graphs:
            return entry
        from .graph import relation_dict

        self._rt.indexer.open()
        relations = [relation_dict(r) for g in graphs for r in g.relations(entry_ids=[entry_id])]
        return attrs.evolve(entry, metadata={**entry.metadata, "graph": relations})

    def get_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        include_inactive: bool = False,
    ) -> list[MemoryEntry]:
        scope = query_scope(user_id, agent_id, run_id, require_scope=self.config.require_scope)
        entries = self._rt.store.entries(status=None if include_inactive else "active", scope=scope)
        return entries if include_inactive else expiry.live(entries)

    def history(self, entry_id: str | None = None) -> list[dict[str, Any]]:
        return self._rt.store.history(None if entry_id is None else check_entry_id(entry_id))

    def update(
        self, entry_id: str, memory: str, reason: str = "updated by the application"
    ) -> MemoryEntry:
        if not isinstance(memory, str) or not memory.strip():
            raise InputError("memory: expected a non-empty string")
        check_text(memory, "memory")
        if not isinstance(reason, str):
            raise InputError(f"reason: expected a string, got {type(reason).__name__}")
        check_text(reason, "reason")
        rt = self._rt
        with self._lock:
            rt.indexer.open()
            old = self._editor.active(check_entry_id(entry_id))
            with rt.hooks.scope(old.scope):
                entry, change = self._editor.rewrite(old, memory, reason)
                rt.hooks.entries_changed([change])
            return entry

    def delete(self, entry_id: str, reason: str = "deleted by the application") -> None:
        if not isinstance(reason, str):
            raise InputError(f"reason: expected a string, got {type(reason).__name__}")
        check_text(reason, "reason")
        rt = self._rt
        with self._lock:
            rt.indexer.open()
            old = self._editor.active(check_entry_id(entry_id))
            with rt.hooks.scope(old.scope):
                change = self._editor.retire(old, action="delete", reason=reason)
                rt.hooks.entries_changed([change])

    def erase(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> EraseReceipt:
        """Remove every trace of a tenant: the messages, entries, history, vectors, lexical
        postings and graph relations of each scope matching the given fields (``user_id=
        "alice"``: all of Alice's scopes, whatever their agent and run), with the files
        rewritten so the removed bytes are gone. Returns an
        :class:`~lightmem_core.pipeline.erase.EraseReceipt` with the counts."""
        from .pipeline.erase import erase_scope

        return erase_scope(self._rt, user_id, agent_id, run_id)

    # -- update ----------------------------------------------------------------------------

    def construct_update_queue_all_entries(self, top_k: int = 20, keep_top_n: int = 10) -> int:
        """For each entry added or changed since the last pass, queue its most similar
        not-newer entries (the ones it may update or supersede). Returns the queue size."""
        from .pipeline.update import construct_update_queue

        rt = self._rt
        with self._lock:
            rt.indexer.open()
            rt.indexer.flush()
            expiry.purge(rt)  # expired memories are retired, not queued (pipeline/expiry.py)
            return rt.run(
                "update",
                lambda: construct_update_queue(rt, top_k=top_k, keep_top_n=keep_top_n),
                mode="queue",
            )

    def offline_update_all_entries(self, score_threshold: float = 0.8) -> list[EntryChange]:
        """Send each older entry that a newer one resembles above ``score_threshold`` to the
        LLM, which answers update / delete / ignore (the newer fact wins). Resumable."""
        from .pipeline.update import offline_update

        rt = self._rt
        with rt.update_pass:  # one pass at a time; searches and adds go on beside it
            with self._lock:
                rt.indexer.open()
                rt.indexer.flush()
                expired = expiry.purge(rt)  # expired memories go first (pipeline/expiry.py)
            # Outside the lock: the pass takes it to read and to write, never across its
            # LLM calls (a search waits for a write, not for a model).
            return expired + rt.run(
                "update",
                lambda: offline_update(rt, score_threshold=score_threshold),
                mode="offline",
            )

    # -- accounting ------------------------------------------------------------------------

    def run_operation(self, name: str, body: Callable[[], T], **details: Any) -> T:
        """Run ``body()`` as an operation of this memory named ``name``: the hook wrappers see
        it, and the usage of this memory's LLM and embedder calls inside it (nested work
        included) is booked under ``name`` (e.g. an evaluation's ``qa_answer``)."""
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"name: expected a non-empty operation name, got {name!r}")
        return self._rt.run(name, body, **details)

    def get_token_statistics(self) -> dict[str, Any]:
        """LLM calls, tokens and embedder calls per operation and in total."""
        per_op = self._rt.store.usage()
        total = Usage()
        for usage in per_op.values():
            total.add(usage)
        as_dict = lambda u: {**attrs.asdict(u), "total_tokens": u.total_tokens}  # noqa: E731
        return {"total": as_dict(total), "by_operation": {k: as_dict(v) for k, v in per_op.items()}}

    def stats(self) -> dict[str, Any]:
        """Counts of entries, messages and batches; usage; backends and chains."""
        stats = self._rt.store.stats()
        stats["usage"] = self.get_token_statistics()
        stats["memory_dir"] = str(Path(self.config.memory_dir).resolve())
        stats["backends"] = self._rt.backends.configured()
        stats["chains"] = self._rt.backends.chain_description()
        from .pipeline import budget

        stats["budget"] = budget.status(self.config, self._rt.store)
        llm = self._rt.backends.memory_manager() if self.config.memory_manager else None
        if llm is not None:
            stats["kv_cache"] = {"enabled": bool(self.config.kv_cache), **llm.cache_stats()}
        return stats


guard_public_api(LightMemory)
