"""``LightMemory``: the facade applications use; it drives the pipeline through the registry."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
from lightmem_hookspecs import (
    EntryChange,
    IndexRecord,
    MemoryEntry,
    Message,
    QueryContext,
    Scope,
    SearchFilter,
    SearchHit,
    Segment,
    Usage,
)

from .backends import Backends, UsageBook, current_operation
from .buildchecks import check_embedding_dims
from .config import LightMemConfig, load_config_file, validate
from .errors import (
    BackendError,
    InputError,
    ScopeRequiredError,
    StoreError,
    guard_public_api,
    typed,
)
from .indexing import index_text, message_context, vector_text
from .messages import count_tokens, normalize_messages
from .owner import claim_memory_dir
from .plugins import PluginHost
from .queries import build_filter, check_entry_id, check_limit, check_query, in_scope, query_scope
from .retry import BatchRetrier, retry_time
from .scope import check_text, is_unscoped, make_scope, scope_key
from .store import JournalRow, RecordStore, entry_payload

log = logging.getLogger("lightmem")

_ROLES_BY_USE = {
    "user_only": ("user",),
    "assistant_only": ("assistant",),
    "hybrid": ("user", "assistant"),
}
_ENTRY_NS = uuid.UUID("6d1f4c3e-2b7a-4f0e-9a51-3c7e0b9d8a21")


@attrs.frozen
class AddResult:
    """What one ``add_memory`` call did."""

    messages_received: int
    messages_added: int
    entries_added: tuple[str, ...]
    batches_extracted: int
    batches_pending: int
    usage: Usage


def format_entry(entry: MemoryEntry) -> str:
    """The original LightMem's retrieval string: time stamp, weekday, then the memory."""
    if entry.time_stamp is None:
        return entry.memory
    return f"{entry.time_stamp:%Y-%m-%d %H:%M} {entry.weekday} {entry.memory}"


class LightMemory:
    """Long-term memory: ``add_memory`` messages, ``retrieve`` what is relevant to a query.

    Build it with :meth:`from_config` (the original LightMem configuration dictionary, a
    :class:`LightMemConfig`, or a JSON/TOML/YAML file) or with no arguments for the embedded
    default (MiniLM + local Qdrant + BM25 + hybrid retrieval under ``./lightmem_data``).
    """

    def __init__(
        self,
        config: Mapping[str, Any] | LightMemConfig | None = None,
        *,
        host: PluginHost | None = None,
        memory_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        raw = config
        if memory_dir is not None:
            if isinstance(raw, LightMemConfig):
                raw = attrs.evolve(raw, memory_dir=str(memory_dir))
            else:
                raw = {**dict(raw or {}), "memory_dir": str(memory_dir)}
        self.host = host or PluginHost()
        self.config, resolved = validate(raw, self.host)
        self._owner = claim_memory_dir(self.config)
        try:
            self.store = RecordStore(self.config.db_path)
            self._book = UsageBook(self.store.add_usage)
            self.backends = Backends(self.config, resolved, self.host, self._book)
            check_embedding_dims(self.config, self.backends)
            self._retrier = BatchRetrier(
                self.store, self._process_batch, background=self.config.background_retry
            )
        except BaseException:
            store = getattr(self, "store", None)
            if store is not None:
                store.close()
            self._owner.release()
            raise
        self._lock = threading.RLock()
        self._prompts: Any = None
        self._indexes_open = False
        if self.store.pending_batches():
            self._retrier.wake()  # left over from an earlier run

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any] | LightMemConfig | str | os.PathLike[str] | None = None,
        *,
        host: PluginHost | None = None,
    ) -> LightMemory:
        """Build from the original LightMem configuration dictionary or a config file path."""
        if isinstance(config, str | os.PathLike):
            config = load_config_file(config)
        return cls(config, host=host)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self._retrier.close()
            self.backends.close()
            self.store.close()
        finally:
            self._owner.release()

    def __enter__(self) -> LightMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _operation(self, name: str) -> Iterator[None]:
        token = current_operation.set(name)
        try:
            yield
        finally:
            current_operation.reset(token)

    # -- indexes ---------------------------------------------------------------------------

    @property
    def embedder(self) -> Any:
        return self.backends.get("text_embedder")

    @property
    def vector_index(self) -> Any:
        return self.backends.get("embedding_retriever")

    @property
    def text_index(self) -> Any:
        return self.backends.get("context_retriever")

    def _open_indexes(self) -> None:
        """Open the derived indexes and bring them in line with the record store."""
        if self._indexes_open:
            return
        vector = self.vector_index
        if vector is not None:
            embedder = self.embedder
            if embedder is None:
                raise StoreError("an embedding_retriever needs a text_embedder to index entries")
            vector.open(model_name=embedder.model_name, dimension=embedder.dimension)
        self._indexes_open = True
        self._sync_indexes()

    def _sync_indexes(self) -> None:
        active = self.store.count_entries("active")
        text = self.text_index
        if text is not None and text.count() != active:
            entries = self.store.entries(status="active")
            stale = [e.id for e in self.store.entries(status=None) if e.status != "active"]
            if stale:
                text.delete(stale)
            text.index([self._index_record(e) for e in entries])
        pending = self.store.entries(status="active", unindexed_only=True)
        if pending:
            self._index(pending, text_too=False)
        vector = self.vector_index
        if vector is not None and vector.count() != active:
            stale = [e.id for e in self.store.entries(status=None) if e.status != "active"]
            if stale:
                vector.delete(stale)
            if vector.count() != active:
                self._index(self.store.entries(status="active"), text_too=False)

    def _index_text(self, entry: MemoryEntry) -> str:
        return index_text(entry)

    def _index_record(self, entry: MemoryEntry, vector: Any = None) -> IndexRecord:
        return IndexRecord(
            id=entry.id,
            text=self._index_text(entry),
            payload=entry_payload(entry),
            vector=tuple(float(x) for x in vector) if vector is not None else None,
        )

    def _index(self, entries: Sequence[MemoryEntry], *, text_too: bool = True) -> None:
        if not entries:
            return
        vector = self.vector_index
        if vector is not None:
            vectors = self.embedder.embed([vector_text(e) for e in entries])
            vector.upsert([self._index_record(e, v) for e, v in zip(entries, vectors, strict=True)])
        text = self.text_index
        if text is not None and text_too:
            text.index([self._index_record(e) for e in entries])
        self.store.mark_indexed([e.id for e in entries])

    def _unindex(self, ids: Sequence[str]) -> None:
        for index in (self.vector_index, self.text_index):
            if index is not None and ids:
                index.delete(list(ids))

    def reindex(self) -> int:
        """Rebuild every derived index from the record store (e.g. after a model change).

        A vector store with ``recreate`` is dropped and created for the current embedder, so
        this is how a store built with another embedding model is moved to this one.
        """
        with self._lock:
            all_entries = self.store.entries(status=None)
            vector, embedder = self.vector_index, self.embedder
            recreate = getattr(vector, "recreate", None)
            if vector is not None and callable(recreate):
                recreate(model_name=embedder.model_name, dimension=embedder.dimension)
                self._indexes_open = True
            else:
                self._open_indexes()
            self._unindex([e.id for e in all_entries])
            active = [e for e in all_entries if e.status == "active"]
            for start in range(0, len(active), 256):
                self._index(active[start : start + 256])
            return len(active)

    # -- ingestion -------------------------------------------------------------------------

    def add_memory(
        self,
        messages: Any,
        force_segment: bool = False,
        force_extract: bool = False,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> AddResult:
        """Add messages (a dict or a list of dicts with role, content, time_stamp).

        Messages enter the sensory buffer; when it holds ``sensory_buffer_tokens`` tokens (or
        ``force_segment``) it is cut into topic segments, which move to the short-term buffer;
        when that holds ``short_term_buffer_tokens`` tokens (or ``force_extract``) its segments
        are flushed as ONE extraction batch. Once this returns, the messages are in the
        journal: a crash or restart loses none of them.
        """
        scope = make_scope(user_id, agent_id, run_id)
        normalized = normalize_messages(messages, scope)
        if normalized and self.config.require_scope and is_unscoped(scope):
            raise ScopeRequiredError(
                "this memory is configured with require_scope: add messages with a user_id, "
                "agent_id or run_id"
            )
        with self._retrier.caller(), self._lock, self._operation("add_memory"):
            usage_before = self._usage_total()
            self.host.messages_normalized(normalized)
            known = self.store.messages_by_id((m.id for m in normalized), scope=scope)
            fresh = [m for m in normalized if m.id not in known]
            fresh = self._compress(fresh)
            added = self.store.add_messages(fresh)
            self._open_indexes()
            new_entries: list[str] = []
            extracted = 0
            self._advance_sensory(scope, force_segment or force_extract)
            flushed = self._advance_short_term(scope, force_extract)
            if flushed is not None:
                # Only the caller's own batch: failed ones are retried in the background or
                # by retry(), never ahead of the caller's work.
                for stored in self._retrier.run([flushed]):
                    if stored is not None:
                        extracted += 1
                        new_entries += stored
            usage = self._usage_total()
            for field in attrs.fields(Usage):
                setattr(
                    usage,
                    field.name,
                    getattr(usage, field.name) - getattr(usage_before, field.name),
                )
            return AddResult(
                messages_received=len(normalized),
                messages_added=len(added),
                entries_added=tuple(new_entries),
                batches_extracted=extracted,
                batches_pending=len(self.store.pending_batches()),
                usage=usage,
            )

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
        """Segment and extract whatever the buffers of a scope hold."""
        return self.add_memory(
            [],
            force_segment=True,
            force_extract=True,
            user_id=user_id,
            agent_id=agent_id,
            run_id=run_id,
        )

    def _compress(self, messages: list[Message]) -> list[Message]:
        compressors = self.backends.chain("pre_compressor")
        if not compressors or not messages:
            return messages
        texts = [m.content for m in messages]
        for backend, name in zip(compressors, self.backends.names("pre_compressor"), strict=True):

            def call(op: Any, backend: Any = backend, texts: list[str] = texts) -> list[str]:
                return list(backend.compress(texts))

            out, _ = self.host.run_operation("compress", call, backend=name, texts=len(texts))
            if len(out) != len(texts):
                raise BackendError(
                    f"pre_compressor {name!r} returned {len(out)} texts for {len(texts)} inputs"
                )
            texts = [
                new if new and new.strip() else old for new, old in zip(out, texts, strict=True)
            ]
        return [attrs.evolve(m, content=t) for m, t in zip(messages, texts, strict=True)]

    def _advance_sensory(self, scope: Scope, force: bool) -> None:
        rows = self.store.journal("sensory", scope)
        if not rows:
            return
        tokens = sum(count_tokens(r.message.content) for r in rows)
        if not force and tokens < self.config.sensory_buffer_tokens:
            return
        messages = [r.message for r in rows]
        boundaries = self._segment(messages)
        cuts = [0, *boundaries, len(messages)]
        groups = [messages[a:b] for a, b in itertools.pairwise(cuts) if b > a]
        if not force and len(groups) > 1:
            groups = groups[:-1]  # the last topic may go on: it stays in the sensory buffer
        with self.store.transaction() as db:
            topic_ids = self.store.next_topic_ids(db, len(groups))
        segments = [
            Segment(topic_id=t, messages=tuple(g)) for t, g in zip(topic_ids, groups, strict=True)
        ]
        self.host.segments_ready(segments)
        self.store.mark_short_term(
            {m.id: s.topic_id for s in segments for m in s.messages}, scope=scope
        )

    def _segment(self, messages: list[Message]) -> list[int]:
        segmenter = self.backends.get("topic_segmenter") if self.config.topic_segment else None
        if segmenter is None or len(messages) < 2:
            return []
        name = self.backends.names("topic_segmenter")[0]
        raw, _ = self.host.run_operation(
            "segment",
            lambda op: segmenter.segment(messages),
            backend=name,
            messages=len(messages),
        )
        boundaries = sorted({int(b) for b in raw})
        bad = [b for b in boundaries if not 0 < b < len(messages)]
        if bad:
            raise BackendError(
                f"topic_segmenter {name!r} returned boundaries {bad} outside 1..{len(messages) - 1}"
            )
        return boundaries

    def _advance_short_term(self, scope: Scope, force: bool) -> str | None:
        rows = self.store.journal("short_term", scope)
        if not rows:
            return None
        tokens = sum(count_tokens(r.message.content) for r in rows if self._uses(r.message))
        if not force and tokens < self.config.short_term_buffer_tokens:
            return None
        return self.store.create_batch([r.message.id for r in rows], scope=scope)

    def _uses(self, message: Message) -> bool:
        return message.role in _ROLES_BY_USE[self.config.messages_use]

    def _retry_at(self, attempts: int) -> str:
        return retry_time(attempts, self.config.retry_backoff, self.config.retry_backoff_max)

    def _process_batch(self, batch_id: str) -> list[str] | None:
        """Extract, store and index one batch. Returns stored entry ids, or None if it failed.

        The extraction (the LLM call) runs without the memory's lock unless the caller holds
        it; storing and indexing take it. Messages whose facts could not be extracted stay
        pending in a new batch retried later.
        """
        with self._lock:
            info = self.store.batch_info(batch_id)
            if info is None or info["state"] == "done":
                return None
            rows = self.store.batch_messages(batch_id)
            self._open_indexes()
            llm = self.backends.get("memory_manager")
        segments = _segments_of(rows)
        try:
            with self._operation("extract"):
                entries, unextracted, error = self._extract(batch_id, segments, llm)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # any failure (a backend's panic too) leaves it pending
            exc = typed(exc, "extraction")
            retry_at = self._retry_at(int(info["attempts"]) + 1)
            self.store.batch_failed(batch_id, str(exc), retry_at=retry_at)
            log.warning(
                "extraction of batch %s failed; it stays pending and is retried from %s (or "
                "by retry() / `lightmem retry`): %s",
                batch_id,
                retry_at,
                exc,
            )
            self._retrier.wake()
            return None
        with self._lock:
            self.host.batch_extracted(segments, entries)
            stored = self.store.complete_batch(
                batch_id,
                entries,
                unextracted=unextracted,
                error=error,
                retry_at=self._retry_at(1) if unextracted else None,
            )
            self._index(stored)
            if stored:
                self.host.entries_stored(stored)
                if self.config.update == "online" and llm is not None:
                    with self._operation("update"):
                        self._online_update(stored)
        if unextracted:
            log.warning(
                "%d message(s) of batch %s could not be extracted; they stay pending: %s",
                len(unextracted),
                batch_id,
                error,
            )
            self._retrier.wake()
        return [e.id for e in stored]

    def _extract(
        self, batch_id: str, segments: list[Segment], llm: Any
    ) -> tuple[list[MemoryEntry], tuple[str, ...], str]:
        """(entries, ids of messages left unextracted, why)."""
        if llm is None:
            entries: list[MemoryEntry] = []
            previous: Message | None = None
            for s in segments:
                for m in s.messages:
                    if self._uses(m):
                        entries.append(_entry_from_message(m, s.topic_id, previous))
                    previous = m
            return entries, (), ""
        from .llm.extraction import extract_facts

        result = extract_facts(
            llm,
            segments,
            messages_use=self.config.messages_use,
            metadata_generate=self.config.metadata_generate,
            text_summary=self.config.text_summary,
            extract_threshold=self.config.extract_threshold,
            prompts=self.prompts,
        )
        by_id = {m.id: (m, s.topic_id) for s in segments for m in s.messages}
        entries = []
        for i, fact in enumerate(result.facts):
            first = by_id.get(fact.source_message_ids[0]) if fact.source_message_ids else None
            scope = first[0].scope if first else Scope()
            entries.append(
                MemoryEntry(
                    id=uuid.uuid5(_ENTRY_NS, f"{batch_id}:{i}").hex,
                    memory=fact.text,
                    source_message_ids=tuple(fact.source_message_ids),
                    time_stamp=fact.time_stamp,
                    speaker_id=fact.speaker_id,
                    speaker_name=fact.speaker_name,
                    topic_id=fact.topic_id,
                    scope=scope,
                    category=fact.category,
                    keywords=tuple(fact.keywords or ()),
                    entities=tuple(fact.entities or ()),
                    topic_summary=fact.topic_summary,
                    importance=fact.importance,
                )
            )
        return entries, result.unextracted, result.error

    @property
    def prompts(self) -> Any:
        if self._prompts is None:
            from .llm.prompts import Prompts

            overrides = {k: v for k, v in attrs.asdict(self.config.prompts).items() if v}
            self._prompts = Prompts(**overrides)
        return self._prompts

    def retry(self) -> AddResult:
        """Retry every pending or failed extraction batch now, whatever its retry time."""
        with self._retrier.caller(), self._operation("retry"):
            usage_before = self._usage_total()
            new_entries: list[str] = []
            extracted = 0
            for stored in self._retrier.run(self.store.pending_batches()):
                if stored is not None:
                    extracted += 1
                    new_entries += stored
            usage = self._usage_total()
            for field in attrs.fields(Usage):
                setattr(
                    usage,
                    field.name,
                    getattr(usage, field.name) - getattr(usage_before, field.name),
                )
            return AddResult(
                messages_received=0,
                messages_added=0,
                entries_added=tuple(new_entries),
                batches_extracted=extracted,
                batches_pending=len(self.store.pending_batches()),
                usage=usage,
            )

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
    ) -> list[SearchHit]:
        """Structured retrieval: hits with the entry, fused score and per-signal scores."""
        query, limit = check_query(query), check_limit(limit)
        search_filter = build_filter(
            filters, user_id, agent_id, run_id, require_scope=self.config.require_scope
        )
        strategy = strategy or self.config.retrieve_strategy or "hybrid"
        if not isinstance(strategy, str) or strategy not in ("embedding", "context", "hybrid"):
            raise InputError(f"strategy: expected embedding, context or hybrid, got {strategy!r}")
        with self._lock, self._operation("retrieve"):
            self._open_indexes()
            ctx = QueryContext(query=query, limit=limit, strategy=strategy, filter=search_filter)
            self.host.query_prepared(ctx)

            def call(op: Any) -> list[SearchHit]:
                return self._search(ctx)

            hits, _ = self.host.run_operation("retrieve", call, strategy=ctx.strategy)
            self.host.results_ready(ctx, hits)
            return hits[: ctx.limit]

    def _search(self, ctx: QueryContext) -> list[SearchHit]:
        fetch = max(ctx.limit * 5, 50)
        while True:
            hits, more = self._search_fetch(ctx, fetch)
            # Scope is matched exactly after the backends' (field-wise) filtering: fetch more
            # while entries of other scopes crowd the kept hits below the limit.
            if len(hits) >= ctx.limit or not more:
                break
            fetch *= 4
        reranker = self.backends.get("reranker")
        if reranker is not None:
            hits = list(reranker.rerank(ctx.query, hits, limit=ctx.limit))
        return hits[: ctx.limit]

    def _search_fetch(self, ctx: QueryContext, fetch: int) -> tuple[list[SearchHit], bool]:
        signals: dict[str, list[tuple[str, float]]] = {}
        if ctx.strategy in ("embedding", "hybrid"):
            if self.vector_index is None:
                raise InputError("strategy 'embedding' needs an embedding_retriever")
            vector = self.embedder.embed([ctx.query])[0]
            signals["embedding"] = self.vector_index.search(
                [float(x) for x in vector], limit=fetch, filter=ctx.filter
            )
        if ctx.strategy in ("context", "hybrid"):
            if self.text_index is None:
                raise InputError("strategy 'context' needs a context_retriever")
            signals["context"] = self.text_index.search(ctx.query, limit=fetch, filter=ctx.filter)
        weights = self.config.hybrid_weights
        fused: dict[str, SearchHit] = {}
        for signal, results in signals.items():
            weight = getattr(weights, signal)
            for rank, (entry_id, score) in enumerate(results, start=1):
                hit = fused.setdefault(entry_id, SearchHit(id=entry_id, score=0.0))
                hit.scores[signal] = float(score)
                hit.ranks[signal] = rank
                if len(signals) == 1:
                    hit.score = float(score)
                else:
                    hit.score += weight / (weights.rrf_k + rank)
        ordered = sorted(fused.values(), key=lambda h: h.score, reverse=True)
        entries = {e.id: e for e in self.store.entries([h.id for h in ordered], status="active")}
        hits = []
        for hit in ordered:
            entry = entries.get(hit.id)
            if entry is None or not _scope_ok(entry, ctx.filter):
                continue
            hit.entry = entry
            hits.append(hit)
        more = any(len(results) >= fetch for results in signals.values())
        return hits, more

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
        return self.store.get_entry(check_entry_id(entry_id))

    def get_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        include_inactive: bool = False,
    ) -> list[MemoryEntry]:
        scope = query_scope(user_id, agent_id, run_id, require_scope=self.config.require_scope)
        return self.store.entries(status=None if include_inactive else "active", scope=scope)

    def history(self, entry_id: str | None = None) -> list[dict[str, Any]]:
        return self.store.history(None if entry_id is None else check_entry_id(entry_id))

    def update(
        self, entry_id: str, memory: str, reason: str = "updated by the application"
    ) -> MemoryEntry:
        if not isinstance(memory, str) or not memory.strip():
            raise InputError("memory: expected a non-empty string")
        check_text(memory, "memory")
        if not isinstance(reason, str):
            raise InputError(f"reason: expected a string, got {type(reason).__name__}")
        check_text(reason, "reason")
        with self._lock:
            self._open_indexes()
            old = self._require_active(entry_id)
            entry = self.store.update_entry_text(entry_id, memory, reason)
            self._index([entry])
            self.host.entries_changed([EntryChange(entry_id, "update", old.memory, memory, reason)])
            return entry

    def delete(self, entry_id: str, reason: str = "deleted by the application") -> None:
        if not isinstance(reason, str):
            raise InputError(f"reason: expected a string, got {type(reason).__name__}")
        check_text(reason, "reason")
        with self._lock:
            self._open_indexes()
            old = self._require_active(entry_id)
            self.store.retire_entry(entry_id, action="delete", reason=reason)
            self._unindex([entry_id])
            self.host.entries_changed([EntryChange(entry_id, "delete", old.memory, None, reason)])

    def _require_active(self, entry_id: str) -> MemoryEntry:
        entry = self.store.get_entry(check_entry_id(entry_id))
        if entry is None:
            raise InputError(f"entry {entry_id!r} does not exist")
        if entry.status != "active":
            raise InputError(f"entry {entry_id!r} is {entry.status}, not active")
        return entry

    # -- update ----------------------------------------------------------------------------

    def construct_update_queue_all_entries(self, top_k: int = 20, keep_top_n: int = 10) -> int:
        """For each entry added or changed since the last pass, queue its most similar
        not-newer entries (the ones it may update or supersede). Returns the queue size."""
        from .update import construct_update_queue

        with self._lock, self._operation("update"):
            self._open_indexes()
            return construct_update_queue(self, top_k=top_k, keep_top_n=keep_top_n)

    def offline_update_all_entries(self, score_threshold: float = 0.8) -> list[EntryChange]:
        """Send each older entry that a newer one resembles above ``score_threshold`` to the
        LLM, which answers update / delete / ignore (the newer fact wins). Resumable."""
        from .update import offline_update

        with self._lock, self._operation("update"):
            self._open_indexes()
            return offline_update(self, score_threshold=score_threshold)

    def _online_update(self, stored: Sequence[MemoryEntry]) -> list[EntryChange]:
        from .update import online_update

        return online_update(self, stored)

    # -- accounting ------------------------------------------------------------------------

    def _usage_total(self) -> Usage:
        total = Usage()
        for usage in self.store.usage().values():
            total.add(usage)
        return total

    def get_token_statistics(self) -> dict[str, Any]:
        """LLM calls, tokens and embedder calls per operation and in total."""
        per_op = self.store.usage()
        total = Usage()
        for usage in per_op.values():
            total.add(usage)
        as_dict = lambda u: {**attrs.asdict(u), "total_tokens": u.total_tokens}  # noqa: E731
        return {"total": as_dict(total), "by_operation": {k: as_dict(v) for k, v in per_op.items()}}

    def stats(self) -> dict[str, Any]:
        stats = self.store.stats()
        stats["usage"] = self.get_token_statistics()
        stats["memory_dir"] = str(Path(self.config.memory_dir).resolve())
        stats["backends"] = self.backends.configured()
        return stats


guard_public_api(LightMemory)


def _segments_of(rows: Sequence[JournalRow]) -> list[Segment]:
    segments: list[Segment] = []
    for row in rows:
        topic = row.topic_id if row.topic_id is not None else -1
        if segments and segments[-1].topic_id == topic:
            segments[-1] = Segment(topic, (*segments[-1].messages, row.message))
        else:
            segments.append(Segment(topic, (row.message,)))
    return segments


def _entry_from_message(
    message: Message, topic_id: int, previous: Message | None = None
) -> MemoryEntry:
    return MemoryEntry(
        id=uuid.uuid5(_ENTRY_NS, f"message:{scope_key(message.scope)}:{message.id}").hex,
        memory=message.content,
        source_message_ids=(message.id,),
        time_stamp=message.time_stamp,
        speaker_id=message.speaker_id,
        speaker_name=message.speaker_name,
        topic_id=topic_id,
        scope=message.scope,
        original_memory=message.original_content
        if message.original_content != message.content
        else None,
        metadata={"role": message.role, **message_context(previous, message)},
    )


def _scope_ok(entry: MemoryEntry, f: SearchFilter) -> bool:
    return f.matches(entry.id, entry_payload(entry)) and in_scope(entry.scope, f)
