"""The ingestion stage: normalize → compress chain → journal → segment → short-term batch →
extract → store → index → (online) update."""

from __future__ import annotations

import datetime as dt
import enum
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from lightmem_hookspecs import (
    Batch,
    BatchState,
    JournalRow,
    MemoryEntry,
    Message,
    Scope,
    Segment,
    Usage,
)

from ..errors import BackendError, HookError, ScopeRequiredError, typed
from ..indexing import PASSAGE_KEY, message_context, passage_spans, reply_context
from ..messages import normalize_messages
from ..retry import BatchRetrier, retry_time
from ..scope import is_unscoped, scope_key
from . import budget, buffers, expiry, local
from .runtime import Runtime

if TYPE_CHECKING:
    from ..llm.extraction import ImageCaption

log = logging.getLogger("lightmem")


class Allowance(enum.Enum):
    """``process_batch``'s default: what a batch taken up by the background retrier may spend."""

    #: A fresh ``llm_tokens_per_add`` (no limit when it is not set).
    CONFIGURED = "configured"


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


class Ingestion:
    """Turns messages into stored, indexed memory entries.

    Failed batches are not retried here ahead of a caller's own work: ``retrier`` retries
    them in the background (with backoff) or when ``retry()`` asks.
    """

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.retrier = BatchRetrier(
            rt.store, self.process_batch, background=rt.config.background_retry
        )

    def retry_at(self, attempts: int) -> dt.datetime:
        """When a batch that failed ``attempts`` times is retried next."""
        config = self.rt.config
        return retry_time(attempts, config.retry_backoff, config.retry_backoff_max)

    # -- the whole stage -------------------------------------------------------------------

    def add(
        self,
        messages: Any,
        scope: Scope,
        *,
        force_segment: bool,
        force_extract: bool,
        token_budget: int | None = None,
        journaled: Callable[[], object] | None = None,
    ) -> AddResult:
        """Normalize, journal and move messages through the buffers (see ``add_memory``).

        ``journaled`` runs once the messages are in the journal, before any of them is
        extracted (image memory stores the messages' image entries there)."""
        rt = self.rt
        token_budget = budget.check_token_budget(token_budget)
        normalized = normalize_messages(
            messages,
            scope,
            max_chars=rt.config.max_message_chars,
            truncate=rt.config.truncate_long_messages,
        )
        expiry.check_messages(normalized)
        if normalized and rt.config.require_scope and is_unscoped(scope):
            raise ScopeRequiredError(
                "this memory is configured with require_scope: add messages with a user_id, "
                "agent_id or run_id"
            )
        with (
            self.retrier.caller(),
            rt.gate.shared(),
            rt.scope_locks.hold(scope),
            rt.hooks.scope(scope),
        ):
            result, op = rt.operation(
                "add_memory",
                lambda: self._add(
                    normalized,
                    scope,
                    force_segment or force_extract,
                    force_extract,
                    token_budget,
                    journaled,
                ),
                messages=len(normalized),
            )
        return attrs.evolve(result, usage=op.usage)

    def _add(
        self,
        normalized: list[Message],
        scope: Scope,
        force_segment: bool,
        force_extract: bool,
        token_budget: int | None = None,
        journaled: Callable[[], object] | None = None,
    ) -> AddResult:
        rt = self.rt
        received = len(normalized)
        # The caller holds its scope's lock: no other add changes these buffers meanwhile
        # (adds of other scopes run side by side, see concurrency.py). The lock a
        # search takes (rt.lock) covers the journal writes only; the models (compression,
        # segmentation, extraction) run without it, so a search never waits for a model.
        rt.hooks.messages_normalized(normalized)
        known = rt.store.messages_by_id((m.id for m in normalized), scope=scope)
        fresh = self.compress([m for m in normalized if m.id not in known])
        with rt.lock:
            added = rt.store.add_messages(fresh)
            rt.indexer.open()
        if journaled is not None:
            journaled()
        self.advance_sensory(scope, force_segment)
        with rt.lock:
            flushed = self.advance_short_term(scope, force_extract)
        new_entries: list[str] = []
        extracted = 0
        allowance = budget.call_budget(rt.config, token_budget) if rt.llm is not None else None
        # The caller's own batch, and with a per-call budget the batches of its scope that an
        # earlier call held back (oldest first). Failed batches are retried in the background
        # or by retry(), never ahead of the caller's work.
        todo = [flushed] if flushed is not None else []
        if allowance is not None:
            todo = self.held_batches(scope) + todo
            if len(todo) > 1:  # one call for the held messages and the new ones
                with rt.lock:
                    todo = [rt.store.merge_batches(todo)]
        for stored in self.retrier.run(todo, allowance=allowance):
            if stored is not None:
                extracted += 1
                new_entries += stored
        return AddResult(
            messages_received=received,
            messages_added=len(added),
            entries_added=tuple(new_entries),
            batches_extracted=extracted,
            batches_pending=len(rt.store.pending_batches()),
            usage=Usage(),
        )

    # -- compress --------------------------------------------------------------------------

    def compress(self, messages: list[Message]) -> list[Message]:
        return local.compress(self.rt, messages)

    # -- sensory buffer and segmentation ---------------------------------------------------

    def advance_sensory(self, scope: Scope, force: bool) -> None:
        """Cut the sensory buffer of ``scope`` into topics once it is full (or ``force``).
        The segmenter runs without the memory's lock; the journal write takes it."""
        rt = self.rt
        rows = rt.store.journal("sensory", scope)
        if not buffers.sensory_moves_on(rt.config, (r.message for r in rows), force):
            return
        messages = [r.message for r in rows]
        groups = local.topics(messages, local.segment(rt, messages), force)
        topic_ids = rt.store.allocate_topic_ids(len(groups))
        segments = [
            Segment(topic_id=t, messages=tuple(g)) for t, g in zip(topic_ids, groups, strict=True)
        ]
        offered = {m.id: m for s in segments for m in s.messages}
        rt.hooks.segments_ready(segments)
        assignments, contents = _segment_edits(segments, offered)
        dropped = [mid for mid in offered if mid not in assignments]
        with rt.lock:
            rt.store.assign_segments(assignments, scope=scope, contents=contents, dropped=dropped)

    # -- short-term buffer -----------------------------------------------------------------

    def advance_short_term(self, scope: Scope, force: bool) -> str | None:
        rt = self.rt
        rows = rt.store.journal("short_term", scope)
        if not buffers.short_term_flushes(rt.config, (r.message for r in rows), force):
            return None
        return rt.store.create_batch([r.message.id for r in rows], scope=scope)

    def uses(self, message: Message) -> bool:
        return buffers.uses(self.rt.config, message)

    # -- extraction ------------------------------------------------------------------------

    def retry(self) -> AddResult:
        """Retry every pending or failed extraction batch now, whatever its retry time."""
        rt = self.rt
        with self.retrier.caller():
            result, op = rt.operation("extract", self._retry, retry=True)
        return attrs.evolve(result, usage=op.usage)

    def _retry(self) -> AddResult:
        new_entries: list[str] = []
        extracted = 0
        for stored in self.retrier.run(self.rt.store.pending_batches(), allowance=None):
            if stored is not None:
                extracted += 1
                new_entries += stored
        return AddResult(
            messages_received=0,
            messages_added=0,
            entries_added=tuple(new_entries),
            batches_extracted=extracted,
            batches_pending=len(self.rt.store.pending_batches()),
            usage=Usage(),
        )

    def held_batches(self, scope: Scope) -> list[str]:
        """Batches of ``scope`` held back by a per-call budget, oldest first."""
        return [b.id for b in self.rt.store.batches([BatchState.HELD], scope=scope)]

    def fit(self, rows: list[JournalRow], allowance: budget.CallBudget) -> int:
        """How many of ``rows`` (a prefix) one call can still extract: the most whose prompt
        estimate fits what is left, at least one message while the call has spent nothing."""
        from .estimate import batch_cost, batch_prompt_tokens

        # The whole batch's cost, rendered once, split into a fixed overhead and one cost per
        # shown message; prefixes are priced from it, and only the chosen prefix is rendered
        # again to check it exactly (stepping back while the numbering's few tokens matter).
        cost = batch_cost(self.rt, segments_of(rows))
        if cost.total <= allowance.left:
            return len(rows)
        shown = [i for i, r in enumerate(rows) if self.uses(r.message)]

        def rows_for(k: int) -> int:  # rows up to (not including) the (k+1)-th shown message
            return shown[k] if k < len(shown) else len(rows)

        k = 0
        while k < len(cost.per_message) and cost.prefix(k + 1) <= allowance.left:
            k += 1
        while k > 0 and batch_prompt_tokens(self.rt, segments_of(rows[: rows_for(k)])) > (
            allowance.left
        ):
            k -= 1
        n = rows_for(k)
        return n if n or allowance.spent else 1

    def process_batch(
        self,
        batch_id: str,
        allowance: budget.CallBudget | Allowance | None = Allowance.CONFIGURED,
    ) -> list[str] | None:
        """Extract, store and index one batch. Returns stored entry ids, or None if it failed.

        The extraction (the LLM call) runs without the memory's lock unless the caller holds
        it; storing and indexing take it. Messages whose facts could not be extracted stay
        pending in a new batch retried later. ``allowance`` is what the calling ``add_memory``
        may still spend (``Allowance.CONFIGURED``: a fresh ``llm_tokens_per_add``, as for a
        background retry; ``None``: no per-call limit): the messages past it are held (see
        ``budget``).
        """
        rt = self.rt
        if allowance is Allowance.CONFIGURED:
            allowance = budget.call_budget(rt.config, None)
        batch = rt.store.claim_batch(batch_id)  # running: no other worker takes it up
        if batch is None:  # done, gone, or another worker's
            return None
        try:
            with rt.gate.shared():
                return self._process(batch, allowance)
        except BaseException:
            rt.store.release_batch(batch_id)  # no verdict recorded: pending again
            raise

    def _process(self, batch: Batch, allowance: budget.CallBudget | None) -> list[str] | None:
        rt = self.rt
        batch_id = batch.id
        with rt.lock:
            rows = rt.store.batch_messages(batch_id)
            rt.indexer.open()
        held: list[str] = []
        if allowance is not None and rt.llm is not None:
            keep = self.fit(rows, allowance)
            if keep == 0:
                with rt.lock:
                    rt.store.set_batch_state(
                        batch_id, BatchState.HELD, error=budget.HELD_ERROR, attempted=True
                    )
                log.info("batch %s is held: this call's LLM token budget is spent", batch_id)
                return None
            held = [r.message.id for r in rows[keep:]]
            rows = rows[:keep]
        segments = segments_of(rows)
        if budget.limits(rt.config) and rt.llm is not None:
            from .estimate import batch_prompt_tokens

            resume = budget.wait_until(rt.config, rt.store, batch_prompt_tokens(rt, segments))
            if resume is not None:
                with rt.lock:
                    rt.store.set_batch_state(
                        batch_id,
                        BatchState.WAITING_FOR_BUDGET,
                        error=f"{budget.WAITING}: extraction resumes at {budget.iso(resume)}",
                        retry_at=budget.instant(resume),
                        attempted=True,
                    )
                log.info("batch %s waits for the LLM token budget", batch_id)
                self.retrier.wake()
                return None
        # The batch's spend is what its own operations spent (nested LLM calls included).
        extracted, failure, op = rt.attempt(
            "extract", lambda: self.extract(batch_id, segments), batch=batch_id, messages=len(rows)
        )
        spent = op.usage.total_tokens
        if failure is not None or extracted is None:  # any failure leaves it pending
            exc = typed(failure or BackendError("extraction returned nothing"), "extraction")
            retry_at = self.retry_at(batch.attempts + 1)
            rt.store.set_batch_state(
                batch_id, BatchState.FAILED, error=str(exc), retry_at=retry_at, attempted=True
            )
            budget.record(rt.store, spent)
            if allowance is not None:
                allowance.spent += spent
            log.warning(
                "extraction of batch %s failed; it stays pending and is retried from %s (or "
                "by retry() / `lightmem retry`): %s",
                batch_id,
                retry_at,
                exc,
            )
            self.retrier.wake()
            return None
        entries, unextracted, error, captions = extracted
        with rt.lock:
            rt.hooks.batch_extracted(segments, entries)
            if held:  # held with whatever the answer missed: the next call takes them up
                unextracted = (*unextracted, *held)
                error = budget.HELD_ERROR
            stored = rt.store.complete_batch(
                batch_id,
                expiry.stamp(rt.config.memory_ttl, entries, rows),
                unextracted=unextracted,
                rest_state=BatchState.HELD if held else BatchState.FAILED,
                error=error,
                retry_at=None if held else self.retry_at(1) if unextracted else None,
            )
            rt.indexer.index(stored, defer=True)  # vectors: in a batch, before any search
            if stored:
                rt.hooks.entries_stored(stored)
            if captions:  # image entries get the captions the same call wrote
                from ..images import CAPTION_REASON, captioned_entries
                from .edit import EntryEditor

                editor = EntryEditor(rt)
                by_id = {r.message.id: r.message for r in rows}
                changes = [
                    editor.rewrite(entry, text, CAPTION_REASON)[1]
                    for entry, text in captioned_entries(rt, captions, by_id)
                ]
                if changes:
                    rt.hooks.entries_changed(changes)
            online = bool(stored) and rt.config.update == "online" and rt.llm is not None
            if online:
                rt.indexer.flush()  # the older entries' vectors, written like any flush
        if online:
            from .update import online_update

            # Outside the lock: its embedding and its LLM call; it takes the lock to read
            # the indexes and to write its decisions (a search waits for a write only).
            _, update = rt.operation(
                "update",
                lambda: online_update(rt, stored),
                mode="online",
                entries=len(stored),
            )
            spent += update.usage.total_tokens
        with rt.lock:
            budget.record(rt.store, spent)
            if allowance is not None:
                allowance.spent += spent
        if unextracted and not held:
            log.warning(
                "%d message(s) of batch %s could not be extracted; they stay pending: %s",
                len(unextracted),
                batch_id,
                error,
            )
            self.retrier.wake()
        return [e.id for e in stored]

    def extract(
        self, batch_id: str, segments: list[Segment]
    ) -> tuple[list[MemoryEntry], tuple[str, ...], str, tuple[ImageCaption, ...]]:
        """(entries, ids of messages left unextracted, why, captions of the batch's images)."""
        rt = self.rt
        llm = rt.llm
        if llm is None:
            from ..images import images_only

            options = rt.config.indexing
            # A message whose only content is images has entries of its own (its images'),
            # no "[image]" entry, and is nobody's turn before or after.
            turns = [(m, s.topic_id) for s in segments for m in s.messages if not images_only(m)]
            entries: list[MemoryEntry] = []
            for i, (m, topic_id) in enumerate(turns):
                if not self.uses(m):
                    continue
                entries += entries_from_message(
                    m,
                    topic_id,
                    turns[i - 1][0] if i else None,
                    options.max_entry_words,
                    following=turns[i + 1][0] if i + 1 < len(turns) else None,
                    next_words=options.next_turn_words,
                )
            return entries, (), "", ()
        from ..llm.extraction import extract_facts

        with rt.llm_slots:  # at most llm_concurrency extraction calls at once
            result = extract_facts(
                llm,
                segments,
                messages_use=rt.config.messages_use,
                metadata_generate=rt.config.metadata_generate,
                text_summary=rt.config.text_summary,
                extract_threshold=rt.config.extract_threshold,
                prompts=rt.prompts,
                relations=bool(rt.backends.graphs()),
                captions=rt.config.multimodal_embedder is not None,
            )
        by_id = {m.id: (m, s.topic_id) for s in segments for m in s.messages}
        order = [m for s in segments for m in s.messages]
        before = {m.id: prev for prev, m in zip([None, *order], order, strict=False)}
        position = {m.id: n for n, m in enumerate(order)}
        entries = []
        for i, fact in enumerate(result.facts):
            first = by_id.get(fact.source_message_ids[0]) if fact.source_message_ids else None
            scope = first[0].scope if first else Scope()
            # As for an entry made from a message: the turn before its earliest source, for
            # the lexical index (a fact answering a question keeps the question's words).
            sources = [s for s in fact.source_message_ids if s in position]
            earliest = min(sources, key=position.__getitem__) if sources else None
            metadata: dict[str, Any] = (
                message_context(before[earliest], by_id[earliest][0]) if earliest else {}
            )
            if rt.backends.graphs():
                metadata.update(graph_metadata(fact))
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
                    metadata=metadata,
                )
            )
        return entries, result.unextracted, result.error, result.captions


def graph_metadata(fact: Any) -> dict[str, Any]:
    """The relations the extraction call gave a fact, kept with its entry for the graph."""
    from ..graph import RELATIONS_KEY

    return {RELATIONS_KEY: [r.as_dict() for r in fact.relations]}


def _segment_edits(
    segments: Sequence[Segment], offered: dict[str, Message]
) -> tuple[dict[str, int], dict[str, str]]:
    """What a ``segments_ready`` hook left: topic per message id, and edited contents."""
    assignments: dict[str, int] = {}
    contents: dict[str, str] = {}
    for segment in segments:
        for m in segment.messages:
            original = offered.get(m.id)
            if original is None:
                raise HookError(
                    f"a lightmem_segments_ready hook added message {m.id!r}, which was not in "
                    f"the sensory buffer; hooks may edit or drop messages, not add them"
                )
            if m.scope != original.scope:
                raise HookError(
                    f"a lightmem_segments_ready hook moved message {m.id!r} to another scope"
                )
            assignments[m.id] = segment.topic_id
            if m.content != original.content:
                if not isinstance(m.content, str) or not m.content.strip():
                    raise HookError(
                        f"a lightmem_segments_ready hook left message {m.id!r} with empty "
                        f"content; drop the message instead"
                    )
                contents[m.id] = m.content
    return assignments, contents


def segments_of(rows: Sequence[JournalRow]) -> list[Segment]:
    segments: list[Segment] = []
    for row in rows:
        topic = row.topic_id if row.topic_id is not None else -1
        if segments and segments[-1].topic_id == topic:
            segments[-1] = Segment(topic, (*segments[-1].messages, row.message))
        else:
            segments.append(Segment(topic, (row.message,)))
    return segments


def entries_from_message(
    message: Message,
    topic_id: int,
    previous: Message | None = None,
    max_words: int | None = None,
    *,
    following: Message | None = None,
    next_words: int = 0,
) -> list[MemoryEntry]:
    """The entries of ``message`` without an LLM: the message, or with ``max_words`` and a
    longer message, its passages (:func:`~lightmem_core.indexing.passage_spans`).

    Each passage keeps the message as its source, its time stamp, speaker and the turn before
    it (the lexical index's context), and records its place: ``metadata["passage"]`` is
    ``{"index", "of", "start", "end"}``. The first passage has the id the whole message's entry
    would have; the others' ids add their number. With ``next_words``, the first words of
    ``following`` (the turn after) are recorded for the lexical index too.
    """
    whole = entry_from_message(message, topic_id, previous)
    if next_words:
        whole = attrs.evolve(
            whole, metadata={**whole.metadata, **reply_context(message, following, next_words)}
        )
    spans = passage_spans(message.content, max_words) if max_words is not None else []
    if len(spans) < 2:
        return [whole]
    return [
        attrs.evolve(
            whole,
            id=whole.id if i == 0 else uuid.uuid5(_ENTRY_NS, f"{whole.id}:passage:{i}").hex,
            memory=message.content[start:end],
            original_memory=None,
            metadata={
                **whole.metadata,
                PASSAGE_KEY: {"index": i, "of": len(spans), "start": start, "end": end},
            },
        )
        for i, (start, end) in enumerate(spans)
    ]


def entry_from_message(
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
