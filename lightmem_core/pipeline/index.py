"""The index stage: keeps every derived index (vector stores, text indexes, graphs) in line with
the record store — opened and caught up once, then updated incrementally.

Vectors of newly ingested entries are computed lazily: ingestion commits its entries to the
record store and writes them into the text indexes and graphs at once, and queues them for
the vector stores. The queue is embedded in ONE embedder call (which sorts its texts by length,
so batches pad least) once it holds ``vector_batch_texts`` texts, and always before a search,
an update pass, a reindex or close — so every search sees every committed entry. An entry is
marked indexed in the record store only when its vectors are written: after a crash, opening
the memory embeds whatever was still queued.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from lightmem_hookspecs import (
    IndexRecord,
    MemoryEntry,
    TextReset,
    VectorRecreate,
    entry_payload,
)

from ..errors import StoreError
from ..indexing import embedded_text, index_text, speaker_of, with_speakers
from .runtime import Runtime

log = logging.getLogger("lightmem")

#: Entries embedded and written per call when (re)building an index.
CHUNK = 256


def index_record(entry: MemoryEntry, vector: Any = None) -> IndexRecord:
    """What an index stores for ``entry``: its index text, filterable payload and vector."""
    return IndexRecord(
        id=entry.id,
        text=index_text(entry),
        payload=entry_payload(entry),
        vector=tuple(_floats(vector)) if vector is not None else None,
    )


def _floats(vector: Any) -> list[float]:
    if getattr(vector, "ndim", None) == 1:
        return list(vector.tolist())  # a numpy row: one C call, Python floats
    return [float(x) for x in vector]


def _same_version(stored: MemoryEntry, queued: MemoryEntry) -> bool:
    return (
        stored.status == "active"
        and stored.memory == queued.memory
        and (stored.updated_at == queued.updated_at or queued.updated_at is None)
    )


class Indexer:
    """Writes entries into every configured index, each write an ``index`` operation."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._open = False
        #: Entries committed to the record store whose vectors are not written yet, by id.
        self._queued: dict[str, MemoryEntry] = {}

    # -- opening ---------------------------------------------------------------------------

    def open(self) -> None:
        """Open the derived indexes and bring them in line with the record store (once)."""
        if self._open:
            return
        vectors = self.rt.backends.vector_indexes()
        if vectors:
            embedder = self.rt.embedder
            if embedder is None:
                raise StoreError("an embedding_retriever needs a text_embedder to index entries")
            from ..fingerprint import check_embedder, fingerprint

            current = fingerprint(embedder, self.rt.config.speaker_vector_weight)
            check_embedder(self.rt.store, current, record=False)
            for index in vectors:
                index.open(model_name=embedder.model_name, dimension=embedder.dimension)
        self._open = True
        self._sync()

    def _sync(self) -> None:
        store = self.rt.store
        active = store.count_entries("active")
        inactive: list[str] | None = None

        def stale() -> list[str]:
            nonlocal inactive
            if inactive is None:
                inactive = [e.id for e in store.entries(status=None) if e.status != "active"]
            return inactive

        for text in self.rt.backends.text_indexes():
            if text.count() != active:
                if stale():
                    self._call(text, "delete", stale())
                self._call(text, "index", [index_record(e) for e in store.entries(status="active")])
        pending = store.entries(status="active", unindexed_only=True)
        if pending:
            # Text indexes too: a persistent one that kept its count may still hold the old
            # text of an entry whose update was committed just before a crash.
            self.index(pending)
        graphs = self.rt.backends.graphs()
        if graphs:
            active_entries = {e.id: e for e in store.entries(status="active")}
            for graph in graphs:
                have = graph.entry_ids()
                gone = sorted(have - set(active_entries))
                missing = [e for i, e in active_entries.items() if i not in have]
                if gone:
                    self._call(graph, "delete", gone)
                if missing:
                    self.rt.graph.index(graph, missing)
        for vector in self.rt.backends.vector_indexes():
            if vector.count() != active:
                if stale():
                    self._call(vector, "delete", stale())
                if vector.count() != active:
                    self._write_vectors([vector], store.entries(status="active"))

    # -- writing ---------------------------------------------------------------------------

    def _call(self, backend: Any, method: str, items: list[Any]) -> None:
        if not items:
            return
        self.rt.run(
            "index",
            lambda: getattr(backend, method)(items),
            backend=self.rt.backends.name_of(backend),
            action=method,
            items=len(items),
        )

    def _write_vectors(
        self, indexes: Sequence[Any], entries: Sequence[MemoryEntry], *, chunk: int = CHUNK
    ) -> None:
        embedder = self.rt.embedder
        if not indexes or not entries or embedder is None:
            return
        for start in range(0, len(entries), chunk):
            part = entries[start : start + chunk]
            vectors = self._vectors(embedder, part)
            records = [index_record(e, v) for e, v in zip(part, vectors, strict=True)]
            for index in indexes:
                self._call(index, "upsert", records)

    def _vectors(self, embedder: Any, entries: Sequence[MemoryEntry]) -> Any:
        """The vectors of ``entries`` as the vector stores hold them, in ONE embedder call.

        Each is its memory's embedding plus its speaker's name's (``speaker_vector_weight``,
        see :func:`~lightmem_core.indexing.with_speakers`). The names go into the same call as
        the memories; the embedder remembers recent vectors, so a name is encoded once.
        """
        weight = self.rt.config.speaker_vector_weight
        speakers = [speaker_of(e) if weight > 0 else None for e in entries]
        names = list(dict.fromkeys(n for n in speakers if n is not None))
        texts = [embedded_text(e) for e in entries]
        found = embedder.embed(texts + names)
        by_name = dict(zip(names, found[len(texts) :], strict=True))
        return with_speakers(
            found[: len(texts)], [by_name[n] if n is not None else None for n in speakers], weight
        )

    def index(
        self, entries: Sequence[MemoryEntry], *, text_too: bool = True, defer: bool = False
    ) -> None:
        """Write ``entries`` (new or changed) into every index and mark them indexed.

        ``defer``: queue their vectors instead (see the module docs); they are written, and
        the entries marked indexed, by :meth:`flush`, at the latest before the next search.
        """
        if not entries:
            return
        if text_too:
            records = [index_record(e) for e in entries]
            for text in self.rt.backends.text_indexes():
                self._call(text, "index", records)
        for graph in self.rt.backends.graphs():

            def build(graph: Any = graph) -> int:
                return self.rt.graph.index(graph, entries)

            self.rt.run(
                "index",
                build,
                backend=self.rt.backends.name_of(graph),
                action="index",
                items=len(entries),
            )
        if not self.rt.backends.vector_indexes() or self.rt.embedder is None:
            self.rt.store.mark_indexed([e.id for e in entries])
            return
        for entry in entries:
            self._queued.pop(entry.id, None)  # a changed entry moves to the end
            self._queued[entry.id] = entry
        if not defer or len(self._queued) >= self.rt.config.vector_batch_texts:
            self.flush()

    def flush(self) -> int:
        """Write the queued entries' vectors (one embedder call) and mark them indexed.

        Returns how many were written. On failure they stay queued (and unmarked in the
        record store, so a crash loses nothing either).
        """
        if not self._queued:
            return 0
        entries = list(self._queued.values())
        chunk = max(CHUNK, 2 * self.rt.config.vector_batch_texts)
        # Booked as ingestion's work, wherever the flush happens (a search, close).
        self.rt.run(
            "index",
            lambda: self._write_vectors(self.rt.backends.vector_indexes(), entries, chunk=chunk),
            action="flush",
            items=len(entries),
        )
        # Marked only as queued: an entry the record store changed meanwhile (not through this
        # stage, e.g. a crash between its commit and its indexing) stays for the sync on open.
        ids = [e.id for e in entries]
        now = {stored.id: stored for stored in self.rt.store.entries(ids, status=None)}
        self.rt.store.mark_indexed(
            [e.id for e in entries if e.id in now and _same_version(now[e.id], e)]
        )
        for queued in entries:
            key = queued.id
            if self._queued.get(key) is queued:  # not queued again meanwhile
                del self._queued[key]
        return len(entries)

    @property
    def queued(self) -> int:
        """Entries whose vectors wait for the next :meth:`flush`."""
        return len(self._queued)

    def unindex(self, ids: Sequence[str]) -> None:
        """Remove entries from every index (superseded or deleted)."""
        if not ids:
            return
        for i in ids:
            self._queued.pop(i, None)
        backends = self.rt.backends
        for index in (*backends.vector_indexes(), *backends.text_indexes(), *backends.graphs()):
            self._call(index, "delete", list(ids))

    def reindex(self) -> int:
        """Rebuild every index from the record store; returns the number of active entries.

        A vector store offering :class:`~lightmem_hookspecs.VectorRecreate` is dropped and
        created for the current embedder, so this is how a store built with another embedding
        model is moved to this one; a text index offering
        :class:`~lightmem_hookspecs.TextReset` is emptied first.
        """
        store, backends = self.rt.store, self.rt.backends
        embedder = self.rt.embedder
        for vector in backends.vector_indexes():
            if embedder is None:
                raise StoreError("an embedding_retriever needs a text_embedder to index entries")
            if isinstance(vector, VectorRecreate):
                vector.recreate(model_name=embedder.model_name, dimension=embedder.dimension)
            else:
                vector.open(model_name=embedder.model_name, dimension=embedder.dimension)
        if embedder is not None and backends.vector_indexes():
            from ..fingerprint import check_embedder, fingerprint

            current = fingerprint(embedder, self.rt.config.speaker_vector_weight)
            check_embedder(store, current, record=True)
        for text in backends.text_indexes():
            if isinstance(text, TextReset):  # emptied (a damaged file set aside) first
                moved = text.reset()
                if moved is not None:
                    log.warning(
                        "reindex: the %s text index was damaged; moved to %s and rebuilt from "
                        "the record store",
                        backends.name_of(text),
                        moved,
                    )
        self._open = True
        self._queued.clear()  # every active entry is written below
        all_entries = store.entries(status=None)
        self.unindex([e.id for e in all_entries])
        active = [e for e in all_entries if e.status == "active"]
        for start in range(0, len(active), CHUNK):
            self.index(active[start : start + CHUNK])
        return len(active)
