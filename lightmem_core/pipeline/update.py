"""The update stage: the offline "sleep-time" pass (queue, then decide) and online
reconciliation, applying the LLM's decisions through the entry-editing stage.

Which pairs are worth an LLM's attention: an older entry and a newer one that can contradict or
repeat it. A pair qualifies when

- both are active and have exactly the same scope (``user_id``, ``agent_id``, ``run_id``; an
  unset field matches only an unset field, so an unscoped or agent-only memory is never compared
  with a user's);
- they are about the same subject: the same speaker, or a shared entity (entries with neither
  are compared);
- their bare memory texts are similar: the cosine of their embeddings is at or above the
  threshold. Bare means the memory alone: not the speaker- and date-decorated text the index
  embeds, and without a leading ``"Speaker:"`` label (:func:`bare_text`), which would make
  everything one person said look alike;
- one is older: earlier time stamp, or the same time stamp and stored earlier;
- neither is an image's entry: a picture is not a fact a newer fact repeats or contradicts, so
  its caption is never merged into a fact, nor the image superseded by one;
- they are not two passages of one message (``indexing.max_entry_words``): parts of one turn,
  not an older statement and a newer one.

The offline pass visits only entries added or changed since the last completed pass (the
watermark), so entries whose neighbourhood did not change are not asked about again; entries
the pass itself rewrote are not revisited for that change. Its checks (an older entry and its
newer look-alikes) are packed into as few calls as the per-call token budget allows, never
mixing scopes in one call (one user's memories are not shown beside another's); each call's
targets leave the queue as soon as its decisions are applied, so an interrupted pass resumes
where it stopped. Online, one call reconciles a whole extraction batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import attrs
from lightmem_hookspecs import EntryChange, MemoryEntry, SearchFilter

from ..errors import BackendError, ConfigError, ConfigProblem, ExtractionError

if TYPE_CHECKING:
    from ..llm.update import UpdateCheck, UpdateDecision
    from .runtime import Runtime

log = logging.getLogger("lightmem")

WATERMARK = "update_watermark"
PENDING_WATERMARK = "update_pending_watermark"
#: Entries the offline pass rewrote: ``{entry_id: digest of the text it wrote}``.
REVIEWED = "update_reviewed"
#: Prompt tokens (estimated) of memories and checks per offline update call.
UPDATE_BATCH_TOKENS = 3000
#: How many index neighbours are looked at per visited entry before the exact filters.
POOL = 20


def _require_llm(rt: Runtime) -> object:
    llm = rt.llm
    if llm is None:
        raise ConfigError(
            ConfigProblem(
                "$.memory_manager",
                "memory update needs an LLM",
                "configure a memory_manager (e.g. {'model_name': 'openai', 'configs': {...}})",
            )
        )
    return llm


def _digest(text: str) -> str:
    return hashlib.sha1(" ".join(text.split()).encode()).hexdigest()[:16]


def bare_text(entry: MemoryEntry) -> str:
    """The memory as compared for updates: its text without a leading ``"Speaker:"`` label
    (the speaker is compared on its own, as the subject)."""
    text = " ".join(entry.memory.split())
    for name in (entry.speaker_name, entry.speaker_id):
        if name and text[: len(name) + 1].casefold() == f"{name.casefold()}:":
            return text[len(name) + 1 :].strip() or text
    return text


def _subject(entry: MemoryEntry) -> tuple[str | None, set[str]]:
    speaker = entry.speaker_name or entry.speaker_id
    return (speaker.casefold() if speaker else None), {e.casefold() for e in entry.entities}


def same_subject(a: MemoryEntry, b: MemoryEntry) -> bool:
    """Same speaker, or a shared entity; entries that have neither are compared."""
    speaker_a, entities_a = _subject(a)
    speaker_b, entities_b = _subject(b)
    if entities_a & entities_b:
        return True
    if speaker_a is not None and speaker_b is not None:
        return speaker_a == speaker_b
    return not (speaker_a or speaker_b or entities_a or entities_b)


class _Pairs:
    """Finds the older look-alikes of entries (see the module docs), with a cache of bare-text
    vectors and store positions for one pass."""

    def __init__(self, rt: Runtime) -> None:
        embedder, index = rt.embedder, rt.vector_index
        if index is None or embedder is None:
            raise ConfigError(
                ConfigProblem(
                    "$.embedding_retriever",
                    "the memory update needs an embedding_retriever",
                    "configure one (e.g. {'model_name': 'qdrant'})",
                )
            )
        self.rt = rt
        self.embedder = embedder
        self.index = index
        self.vectors: dict[str, Any] = {}
        self.positions: dict[str, int] = {}
        #: Held while the vector index and the record store are read (never while a model
        #: embeds): ``rt.lock`` for the online update, which runs outside it.
        self.reading: AbstractContextManager[Any] = nullcontext()

    def _embed(self, entries: Iterable[MemoryEntry]) -> None:
        import numpy as np

        model = str(getattr(self.embedder, "model_name", ""))
        pending = [(e.id, bare_text(e)) for e in entries if e.id not in self.vectors]
        cache = self.rt.bare_vectors
        found = {t: v for _, t in pending if (v := cache.get(model, t)) is not None}
        missing = list(dict.fromkeys(t for _, t in pending if t not in found))
        for start in range(0, len(missing), 128):
            chunk = missing[start : start + 128]
            vectors = np.asarray(self.embedder.embed(chunk), "float32")
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms > 0, norms, 1.0)
            for text, vector in zip(chunk, vectors, strict=True):
                found[text] = vector
                cache.put(model, text, vector)
        for entry_id, text in pending:
            self.vectors[entry_id] = found[text]

    def _position(self, entry_id: str) -> int:
        """Where the entry stands in storage order (read once per pass, only for ties)."""
        if not self.positions:
            with self.reading:
                listing = self.rt.store.entries(status=None)
            self.positions = {e.id: k for k, e in enumerate(listing, start=1)}
        return self.positions.get(entry_id, 0)

    def older(self, a: MemoryEntry, b: MemoryEntry) -> bool:
        """Whether ``a`` is older than ``b``."""
        ta, tb = a.time_stamp, b.time_stamp
        if ta is not None and tb is not None and ta != tb:
            return ta < tb
        return self._position(a.id) < self._position(b.id)

    def find(
        self,
        entries: Sequence[MemoryEntry],
        *,
        threshold: float,
        limit: int,
        exclude: frozenset[str] = frozenset(),
    ) -> dict[str, list[tuple[MemoryEntry, float]]]:
        """For each of ``entries``, its older look-alikes at or above ``threshold`` (at most
        ``limit``, most similar first), leaving out ``exclude`` (and images, on either side)."""
        from ..images import is_image_entry
        from ..indexing import same_message_passages

        entries = [e for e in entries if not is_image_entry(e)]
        self._embed(entries)
        pools: dict[str, list[str]] = {}
        with self.reading:
            for entry in entries:
                scope = entry.scope
                hits = self.index.search(
                    [float(x) for x in self.vectors[entry.id]],
                    limit=max(POOL, limit),
                    filter=SearchFilter(
                        user_id=scope.user_id,
                        agent_id=scope.agent_id,
                        run_id=scope.run_id,
                        exclude_ids=frozenset({entry.id}) | exclude,
                    ),
                )
                pools[entry.id] = [i for i, _ in hits]
            wanted = {i for ids in pools.values() for i in ids}
            found = {e.id: e for e in self.rt.store.entries(wanted, status="active")}
        self._embed(found.values())
        out: dict[str, list[tuple[MemoryEntry, float]]] = {}
        for entry in entries:
            pairs = []
            for other_id in pools[entry.id]:
                other = found.get(other_id)
                if (
                    other is None
                    or is_image_entry(other)
                    or other.scope != entry.scope
                    or not self.older(other, entry)
                    or not same_subject(other, entry)
                    or same_message_passages(other, entry)
                ):
                    continue
                score = float(self.vectors[entry.id] @ self.vectors[other.id])
                if score >= threshold:
                    pairs.append((other, score))
            pairs.sort(key=lambda p: -p[1])
            if pairs:
                out[entry.id] = pairs[:limit]
        return out


def construct_update_queue(
    rt: Runtime, *, top_k: int, keep_top_n: int, threshold: float = 0.0
) -> int:
    """Queue, for each entry added or changed since the last completed pass, its older
    look-alikes (see the module docs); returns how many entries have some."""
    watermark = int(rt.store.get_meta(WATERMARK) or 0)
    top_revision = rt.store.max_revision()
    reviewed: dict[str, str] = json.loads(rt.store.get_meta(REVIEWED) or "{}")
    visited = [
        e
        for e in rt.store.entries(status="active", changed_since=watermark)
        if reviewed.get(e.id) != _digest(e.memory)
    ]
    found = _Pairs(rt).find(visited, threshold=threshold, limit=min(top_k, keep_top_n))
    queue = {newer: [(o.id, s) for o, s in pairs] for newer, pairs in found.items()}
    rt.store.save_update_queue(queue)
    rt.store.set_meta(PENDING_WATERMARK, str(top_revision))
    return len(queue)


def _batches(checks: Sequence[UpdateCheck], budget: int) -> Iterable[list[UpdateCheck]]:
    """Checks grouped into calls of at most ``budget`` tokens; one call never mixes scopes, so
    no tenant's memories are shown to the LLM beside another's."""
    from ..llm.update import estimate_tokens
    from ..scope import scope_key

    batch: list[UpdateCheck] = []
    size = 0
    key = None
    for check in sorted(checks, key=lambda c: scope_key(c.target.scope)):
        cost = estimate_tokens(check)
        if batch and (size + cost > budget or scope_key(check.target.scope) != key):
            yield batch
            batch, size = [], 0
        batch.append(check)
        key = scope_key(check.target.scope)
        size += cost
    if batch:
        yield batch


def offline_update(
    rt: Runtime, *, score_threshold: float, batch_tokens: int | None = None
) -> list[EntryChange]:
    """Decide the fate of every queued older entry a newer one resembles above the threshold,
    many entries per call (at most ``batch_tokens`` estimated prompt tokens of memories each,
    default :data:`UPDATE_BATCH_TOKENS`).

    Called without ``rt.lock`` (one pass at a time: ``rt.update_pass``): each LLM call runs
    outside it, so a search or an add never waits for the model; the lock is held to read the
    queue and the entries and to apply a call's decisions. A decision about an entry that was
    retired or rewritten while the model decided is not applied. Each call's targets leave
    the queue once its decisions are applied, so an interrupted pass resumes where it
    stopped; a failed call leaves its targets queued for the next pass. The watermark
    advances only when the queue is empty.
    """
    from ..llm.update import decide_updates

    llm = _require_llm(rt)
    with rt.lock:
        checks = _queued_checks(rt, score_threshold)
        reviewed: dict[str, str] = json.loads(rt.store.get_meta(REVIEWED) or "{}")
    changes: list[EntryChange] = []
    for batch in _batches(checks, batch_tokens or UPDATE_BATCH_TOKENS):
        with rt.lock:
            batch = _refresh(rt, batch)
        try:
            decisions = decide_updates(llm, batch, prompts=rt.prompts) if batch else []
        except (ExtractionError, BackendError) as exc:
            log.warning(
                "update decisions for %d entries failed, left for the next pass: %s",
                len(batch),
                exc,
            )
            continue
        with rt.lock:
            for change in _apply_current(rt, batch, decisions, "update pass"):
                changes.append(change)
                if change.new_memory:
                    reviewed[change.entry_id] = _digest(change.new_memory)
            rt.store.set_meta(REVIEWED, json.dumps(reviewed))
            _drop_targets(rt, [c.target.id for c in batch])
    with rt.lock:
        if not any(s >= score_threshold for c in rt.store.update_queue().values() for _, s in c):
            rt.store.clear_update_queue()
            pending = rt.store.get_meta(PENDING_WATERMARK)
            if pending is not None:
                rt.store.set_meta(WATERMARK, pending)
                live = {e.id for e in rt.store.entries(list(reviewed), status="active")}
                rt.store.set_meta(
                    REVIEWED, json.dumps({k: v for k, v in reviewed.items() if k in live})
                )
        if changes:
            rt.hooks.entries_changed(changes)
    return changes


def _queued_checks(rt: Runtime, score_threshold: float) -> list[UpdateCheck]:
    """The queue's targets above ``score_threshold``, each with its active newer look-alikes,
    most similar first; a target without any (or itself retired) leaves the queue."""
    from ..llm.update import UpdateCheck

    pairs: dict[str, list[tuple[str, float]]] = {}
    for newer_id, candidates in rt.store.update_queue().items():
        for older_id, score in candidates:
            if score >= score_threshold and older_id != newer_id:
                pairs.setdefault(older_id, []).append((newer_id, score))
    wanted = set(pairs) | {n for cands in pairs.values() for n, _ in cands}
    active = {e.id: e for e in rt.store.entries(wanted, status="active")}
    checks = []
    for older_id in sorted(pairs):
        newer = [
            (active[n], s) for n, s in sorted(pairs[older_id], key=lambda p: -p[1]) if n in active
        ]
        if older_id in active and newer:
            checks.append(UpdateCheck(active[older_id], newer))
        else:
            _drop_targets(rt, [older_id])
    return checks


def _apply_current(
    rt: Runtime, checks: Sequence[UpdateCheck], decisions: Sequence[Any], label: str
) -> list[EntryChange]:
    """Apply ``decisions`` about ``checks`` (under ``rt.lock``) to entries still as the model
    saw them: a target retired or rewritten meanwhile (a delete, an edit, another update), or
    left without an active newer entry, keeps its current state."""
    by_id = {c.target.id: c for c in checks}
    shown = set(by_id) | {e.id for c in checks for e, _ in c.candidates}
    now = {e.id: e for e in rt.store.entries(shown, status="active")}
    changes: list[EntryChange] = []
    for decision in decisions:
        check = by_id[decision.target_id]
        target = now.get(check.target.id)
        newer = [now[c.id] for c, _ in check.candidates if c.id in now]
        if target is None or target.memory != check.target.memory or not newer:
            log.info(
                "%s: entry %s changed while the model decided; its decision (%s) is not applied",
                label,
                check.target.id,
                getattr(decision, "action", "?"),
            )
            continue
        change = apply_decision(rt, target, decision, newer)
        if change is not None:
            changes.append(change)
    return changes


def _refresh(rt: Runtime, batch: list[UpdateCheck]) -> list[UpdateCheck]:
    """The checks of ``batch`` with the entries' current text; retired entries left out."""
    from ..llm.update import UpdateCheck

    ids = {c.target.id for c in batch} | {e.id for c in batch for e, _ in c.candidates}
    active = {e.id: e for e in rt.store.entries(ids, status="active")}
    fresh = []
    for check in batch:
        newer = [(active[e.id], s) for e, s in check.candidates if e.id in active]
        if check.target.id in active and newer:
            fresh.append(UpdateCheck(active[check.target.id], newer))
    return fresh


def _drop_targets(rt: Runtime, older_ids: Sequence[str]) -> None:
    drop = set(older_ids)
    queue = rt.store.update_queue()
    changed = {
        newer: [(o, s) for o, s in cands if o not in drop]
        for newer, cands in queue.items()
        if any(o in drop for o, _ in cands)
    }
    if changed:
        rt.store.save_update_queue(changed)


def apply_decision(
    rt: Runtime, target: MemoryEntry, decision: object, newer: Sequence[MemoryEntry]
) -> EntryChange | None:
    """Apply an LLM decision about ``target`` through the entry-editing stage: update its
    text, supersede it, or nothing."""
    from .edit import EntryEditor

    action = getattr(decision, "action", "ignore")
    reason = getattr(decision, "reason", "") or ""
    editor = EntryEditor(rt)
    if action == "update":
        new_memory = getattr(decision, "new_memory", None)
        if not new_memory or new_memory.strip() == target.memory.strip():
            return None
        _, change = editor.rewrite(target, new_memory, reason or "merged with newer")
        return attrs.evolve(change, reason=reason)
    if action == "delete":
        replaced_by = getattr(decision, "replaced_by", None)
        if replaced_by not in {e.id for e in newer}:
            replaced_by = newer[0].id if newer else None
        return editor.retire(
            target,
            action="supersede",
            reason=reason,
            replaced_by=replaced_by,
            note=reason or "superseded by a newer entry",
        )
    return None


def online_update(rt: Runtime, stored: Sequence[MemoryEntry]) -> list[EntryChange]:
    """Reconcile a whole extraction batch with the older entries it resembles: ONE call.

    Called without ``rt.lock``: the embedding and the LLM call run outside it, so a search
    never waits for them; the lock is held to read the indexes and the store, and to apply the
    decisions. A decision about an entry that was retired or rewritten while the model
    decided (a delete, an edit, another update) is not applied: it judged text that is gone.
    """
    from ..llm.update import UpdateCheck, decide_updates

    llm = _require_llm(rt)
    if rt.vector_index is None or not stored:
        return []
    finder = _Pairs(rt)
    finder.reading = rt.lock
    found = finder.find(
        stored,
        threshold=rt.config.online_update_threshold,
        limit=rt.config.online_update_top_k,
        exclude=frozenset(e.id for e in stored),
    )
    olds: dict[str, MemoryEntry] = {}
    news: dict[str, list[tuple[MemoryEntry, float]]] = {}
    new = {e.id: e for e in stored}
    for new_id, pairs in found.items():
        for old, score in pairs:
            olds[old.id] = old
            news.setdefault(old.id, []).append((new[new_id], score))
    checks = [UpdateCheck(olds[i], sorted(pairs, key=lambda p: -p[1])) for i, pairs in news.items()]
    decisions: list[UpdateDecision] = []
    for batch in _batches(checks, 10**9):  # one call per scope: a batch has one scope
        try:
            decisions += decide_updates(llm, batch, prompts=rt.prompts, prompt="reconcile")
        except (ExtractionError, BackendError) as exc:
            log.warning("online update of %d entries skipped: %s", len(batch), exc)
    if not decisions:
        return []
    with rt.lock:  # the write: decisions about entries still as the model saw them
        changes = _apply_current(rt, checks, decisions, "online update")
        if changes:
            rt.hooks.entries_changed(changes)
    return changes
