"""Memory update: the offline "sleep-time" pass (queue, then decide) and online reconciliation."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
from lightmem_hookspecs import EntryChange, MemoryEntry, SearchFilter, to_epoch

from .errors import BackendError, ConfigError, ExtractionError
from .indexing import vector_text

if TYPE_CHECKING:
    from .pipeline.runtime import Runtime

log = logging.getLogger("lightmem")

WATERMARK = "update_watermark"
PENDING_WATERMARK = "update_pending_watermark"


def _scope_filter(entry: MemoryEntry, **extra: object) -> SearchFilter:
    return SearchFilter(
        user_id=entry.scope.user_id,
        agent_id=entry.scope.agent_id,
        run_id=entry.scope.run_id,
        **extra,
    )


def _require_llm(mem: Runtime) -> object:
    llm = mem.llm
    if llm is None:
        raise ConfigError(
            [
                "$.memory_manager: memory update needs an LLM; configure a memory_manager "
                "(e.g. {'model_name': 'openai', 'configs': {...}})"
            ]
        )
    return llm


def construct_update_queue(mem: Runtime, *, top_k: int, keep_top_n: int) -> int:
    """Queue, for each entry added or changed since the last completed pass, its most similar
    entries that are not newer than it. Only those visited entries get (re)queued."""
    if mem.vector_index is None:
        raise ConfigError(["$.embedding_retriever: the update queue needs an embedding_retriever"])
    watermark = int(mem.store.get_meta(WATERMARK) or 0)
    top_revision = mem.store.max_revision()
    visited = mem.store.entries(status="active", changed_since=watermark)
    queue: dict[str, list[tuple[str, float]]] = {}
    for start in range(0, len(visited), 128):
        chunk = visited[start : start + 128]
        vectors = mem.embedder.embed([vector_text(e) for e in chunk])
        for entry, vector in zip(chunk, vectors, strict=True):
            extra: dict[str, Any] = {"exclude_ids": frozenset({entry.id})}
            if entry.time_stamp is not None:
                extra["time_lte"] = to_epoch(entry.time_stamp)
            hits = mem.vector_index.search(
                [float(x) for x in vector], limit=top_k, filter=_scope_filter(entry, **extra)
            )
            queue[entry.id] = [(i, float(s)) for i, s in hits[:keep_top_n]]
    mem.store.save_update_queue(queue)
    mem.store.set_meta(PENDING_WATERMARK, str(top_revision))
    return len(queue)


def offline_update(mem: Runtime, *, score_threshold: float) -> list[EntryChange]:
    """Decide the fate of every entry a newer queued entry resembles above the threshold.

    Each decided target is removed from the queue right away, so an interrupted pass resumes
    where it stopped. The watermark advances only when the queue is empty.
    """
    from .llm.update import decide_update

    llm = _require_llm(mem)
    targets: dict[str, list[tuple[str, float]]] = {}
    for newer_id, candidates in mem.store.update_queue().items():
        for older_id, score in candidates:
            if score >= score_threshold and older_id != newer_id:
                targets.setdefault(older_id, []).append((newer_id, score))
    changes: list[EntryChange] = []
    for older_id in sorted(targets):
        older = mem.store.get_entry(older_id)
        newer_entries = {
            e.id: e for e in mem.store.entries([n for n, _ in targets[older_id]], status="active")
        }
        newer = [
            (newer_entries[n], s)
            for n, s in sorted(targets[older_id], key=lambda p: -p[1])
            if n in newer_entries
        ]
        if older is not None and older.status == "active" and newer:
            try:
                decision = decide_update(llm, older, newer, prompts=mem.prompts)
            except (ExtractionError, BackendError) as exc:
                log.warning(
                    "update decision for %s failed, left for the next pass: %s", older_id, exc
                )
                continue
            change = apply_decision(mem, older, decision, [c for c, _ in newer])
            if change is not None:
                changes.append(change)
        _drop_target(mem, older_id)
    if not any(s >= score_threshold for c in mem.store.update_queue().values() for _, s in c):
        mem.store.clear_update_queue()
        pending = mem.store.get_meta(PENDING_WATERMARK)
        if pending is not None:
            mem.store.set_meta(WATERMARK, pending)
    if changes:
        mem.hooks.entries_changed(changes)
    return changes


def _drop_target(mem: Runtime, older_id: str) -> None:
    queue = mem.store.update_queue()
    changed = {
        newer: [(o, s) for o, s in cands if o != older_id]
        for newer, cands in queue.items()
        if any(o == older_id for o, _ in cands)
    }
    if changed:
        mem.store.save_update_queue(changed)


def apply_decision(
    mem: Runtime, target: MemoryEntry, decision: object, newer: Sequence[MemoryEntry]
) -> EntryChange | None:
    """Apply an LLM decision about ``target``: update its text, supersede it, or nothing."""
    action = getattr(decision, "action", "ignore")
    reason = getattr(decision, "reason", "") or ""
    if action == "update":
        new_memory = getattr(decision, "new_memory", None)
        if not new_memory or new_memory.strip() == target.memory.strip():
            return None
        entry = mem.store.update_entry_text(target.id, new_memory, reason or "merged with newer")
        mem.indexer.index([entry])
        return EntryChange(target.id, "update", target.memory, new_memory, reason)
    if action == "delete":
        replaced_by = getattr(decision, "replaced_by", None)
        if replaced_by not in {e.id for e in newer}:
            replaced_by = newer[0].id if newer else None
        mem.store.retire_entry(
            target.id,
            action="supersede",
            reason=reason or "superseded by a newer entry",
            replaced_by=replaced_by,
        )
        mem.indexer.unindex([target.id])
        return EntryChange(target.id, "supersede", target.memory, None, reason, replaced_by)
    return None


def online_update(mem: Runtime, stored: Sequence[MemoryEntry]) -> list[EntryChange]:
    """Reconcile each new entry with its nearest older neighbours right after extraction."""
    from .llm.update import reconcile_fact

    llm = _require_llm(mem)
    if mem.vector_index is None or not stored:
        return []
    new_ids = frozenset(e.id for e in stored)
    vectors = mem.embedder.embed([vector_text(e) for e in stored])
    changes: list[EntryChange] = []
    for entry, vector in zip(stored, vectors, strict=True):
        extra: dict[str, Any] = {"exclude_ids": new_ids}
        if entry.time_stamp is not None:
            extra["time_lte"] = to_epoch(entry.time_stamp)
        hits = mem.vector_index.search(
            [float(x) for x in vector],
            limit=mem.config.online_update_top_k,
            filter=_scope_filter(entry, **extra),
        )
        hits = [(i, s) for i, s in hits if s >= mem.config.online_update_threshold]
        if not hits:
            continue
        found = {e.id: e for e in mem.store.entries([i for i, _ in hits], status="active")}
        neighbours = [(found[i], s) for i, s in hits if i in found]
        if not neighbours:
            continue
        try:
            decisions = reconcile_fact(
                llm,
                entry.memory,
                neighbours,
                prompts=mem.prompts,
                fact_time_stamp=entry.time_stamp,
            )
        except (ExtractionError, BackendError) as exc:
            log.warning("online update of %s skipped: %s", entry.id, exc)
            continue
        for decision in decisions:
            target_id = getattr(decision, "target_id", None)
            target = found.get(target_id) if target_id else None
            if target is None:
                continue
            decision = (
                attrs.evolve(decision, replaced_by=entry.id)
                if attrs.has(type(decision)) and hasattr(decision, "replaced_by")
                else decision
            )
            change = apply_decision(mem, target, decision, [entry])
            if change is not None:
                changes.append(change)
    if changes:
        mem.hooks.entries_changed(changes)
    return changes
