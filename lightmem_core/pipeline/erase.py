"""Erasing a tenant: every trace of a scope removed from the record store and every index.

``erase_scope`` removes the messages, extraction batches, entries, history and queued updates
of every scope matching the given fields (``user_id="alice"`` matches Alice's scopes whatever
their agent and run), then removes the entries from every vector store, text index and graph,
and asks each index that can (:class:`~lightmem_hookspecs.IndexCompaction`) to rewrite its
files so the removed records' bytes are gone. The record store must offer the erase itself
(:class:`~lightmem_hookspecs.ScopeErase`); an erase on one that does not is refused before
anything is removed. The record store goes first: it is the system of record, and an index
left holding an erased entry after a crash answers nothing for it (a hit whose entry is gone
is dropped) until ``reindex``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from lightmem_hookspecs import (
    ContextRetriever,
    EmbeddingRetriever,
    EntryChange,
    GraphMemory,
    IndexCompaction,
    ScopeErase,
)

from ..errors import InputError, StoreError
from ..scope import is_unscoped, make_scope
from .runtime import Runtime


@attrs.frozen
class EraseReceipt:
    """What an erase removed."""

    #: The fields the erase matched (unset fields matched any value).
    scope: dict[str, str | None]
    entries: int
    messages: int
    history: int
    batches: int
    #: Records removed per index, by ``kind:name`` (vectors, lexical postings, graph relations).
    index_records: dict[str, int]
    #: The indexes whose files were rewritten without the removed bytes.
    compacted: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["compacted"] = list(self.compacted)
        return data


def erase_scope(rt: Runtime, user_id: Any, agent_id: Any, run_id: Any) -> EraseReceipt:
    scope = make_scope(user_id, agent_id, run_id)
    if is_unscoped(scope):
        raise InputError(
            "erase: name a user_id, agent_id or run_id; to remove everything, delete the "
            "memory directory"
        )
    store = rt.store
    if not isinstance(store, ScopeErase):
        raise StoreError(
            f"the record store {type(store).__name__} cannot erase a scope (it does not "
            "implement ScopeErase.erase_scope); configure a record store that does, such as "
            "the built-in sqlite store"
        )
    # Exclusive: the ingestion in flight (an extraction too) finishes first, new ingestion
    # waits, so nothing of the tenant is written back after the erase.
    with rt.gate.exclusive(), rt.lock, rt.hooks.scope(scope):
        rt.indexer.open()
        rt.indexer.flush()
        removed = store.erase_scope(
            user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id
        )
        ids = list(removed["entry_ids"])
        indexes = _indexes(rt)
        before = {label: _count(index) for label, index in indexes}
        rt.indexer.unindex(ids)
        counts: dict[str, int] = {}
        for label, index in indexes:
            was, now = before[label], _count(index)
            if was is not None and now is not None:
                counts[label] = max(0, was - now)
        compacted = []
        for label, index in indexes:
            if isinstance(index, IndexCompaction):
                index.compact()
                compacted.append(label)
        if ids:
            rt.hooks.entries_changed(
                [EntryChange(i, "delete", None, None, "scope erased") for i in ids]
            )
    return EraseReceipt(
        scope={"user_id": scope.user_id, "agent_id": scope.agent_id, "run_id": scope.run_id},
        entries=len(ids),
        messages=int(removed["messages"]),
        history=int(removed["history"]),
        batches=int(removed["batches"]),
        index_records=counts,
        compacted=tuple(compacted),
    )


Index = EmbeddingRetriever | ContextRetriever | GraphMemory


def _indexes(rt: Runtime) -> list[tuple[str, Index]]:
    backends = rt.backends
    out: list[tuple[str, Index]] = []
    by_kind: tuple[tuple[str, Sequence[Index]], ...] = (
        ("embedding_retriever", backends.vector_indexes()),
        ("context_retriever", backends.text_indexes()),
        ("graph_memory", backends.graphs()),
    )
    for kind, found in by_kind:
        names = backends.names(kind) if found else []
        for n, index in enumerate(found):
            name = names[n] if n < len(names) else str(n)
            out.append((f"{kind}:{name}", index))
    return out


def _count(index: Index) -> int | None:
    """The index's ``count()`` (every index kind has one), or ``None`` where it fails: the
    receipt then leaves the index out of ``index_records`` rather than failing the erase."""
    try:
        return int(index.count())
    except Exception:
        return None
