"""The record store's interface and the value types a record store exchanges with the core.

The record store is the system of record of one memory: the message journal, extraction
batches, entries with their provenance and history, usage per operation and the update queue.
The core's stages see only :class:`RecordStore`; ``lightmem_core.store.SQLiteRecordStore`` is
the embedded implementation, and a server engine provides another one with the same methods.

Batch state is data: each extraction batch carries a :class:`BatchState`, its retry time,
attempts, last error and scope (:class:`Batch`), so a store finds the batches in a state with
one indexed query and never decodes conventions out of dates or error texts.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from .types import MemoryEntry, Message, Scope, Usage, to_epoch


class BatchState(str, enum.Enum):  # noqa: UP042 (3.10 has no StrEnum)
    """Where an extraction batch stands."""

    #: Created, never tried: extracted by the call that created it (or a retry) at once.
    PENDING = "pending"
    #: Claimed by one worker (:meth:`RecordStore.claim_batch`), which is extracting it now.
    RUNNING = "running"
    #: Its extraction failed; retried from ``retry_at`` (backoff), or by ``retry()``.
    FAILED = "failed"
    #: Held back by a per-call token budget: no background retry takes it; the next
    #: ``add_memory`` of its scope with budget left (or ``retry()``) does.
    HELD = "held"
    #: Waiting for the hourly/daily token budget: retried from ``retry_at``.
    WAITING_FOR_BUDGET = "waiting_for_budget"
    #: Extracted and stored.
    DONE = "done"


#: States a batch is still to be extracted in (everything but ``done``).
UNFINISHED_STATES: tuple[BatchState, ...] = tuple(s for s in BatchState if s != BatchState.DONE)
#: States a worker may claim a batch from.
CLAIMABLE_STATES: tuple[BatchState, ...] = tuple(
    s for s in UNFINISHED_STATES if s != BatchState.RUNNING
)
#: States whose ``retry_at`` schedules the next attempt (a background retry takes them then).
SCHEDULED_STATES: tuple[BatchState, ...] = (
    BatchState.PENDING,
    BatchState.FAILED,
    BatchState.WAITING_FOR_BUDGET,
)


@attrs.frozen
class Batch:
    """One extraction batch: a run of short-term messages of one scope, extracted in one call.

    ``retry_at`` is when a background retry may take it (``None``: any time; ignored for
    ``held``); ``attempts`` counts extraction attempts; ``error`` is why the last one did not
    finish (empty when none failed).
    """

    id: str
    state: BatchState
    scope: Scope = attrs.field(factory=Scope)
    attempts: int = 0
    error: str = ""
    retry_at: _dt.datetime | None = None
    created_at: _dt.datetime | None = None
    updated_at: _dt.datetime | None = None


@attrs.frozen
class JournalRow:
    """A message as the journal holds it: its state, topic and batch."""

    seq: int
    message: Message
    state: str
    topic_id: int | None
    batch_id: str | None


def entry_payload(entry: MemoryEntry) -> dict[str, Any]:
    """The filterable payload an index stores for an entry (the names ``SearchFilter`` uses)."""
    return {
        **entry.scope.as_dict(),
        "speaker": entry.speaker_name or entry.speaker_id,
        "topic_id": entry.topic_id,
        "time_stamp": to_epoch(entry.time_stamp) if entry.time_stamp else None,
    }


@runtime_checkable
class RecordStore(Protocol):
    """The message journal, extraction batches, entries with provenance, history and usage.

    Every method is safe to call from several threads. A method that changes several rows
    changes all of them or none. A store may also implement :class:`EntryFacets` (a read of
    many entries' segment and speaker) and :class:`EntryPositions` (their places in the
    store's order), which searches use where they are there, :class:`EntryRestore`
    (entries and history put back as exported), which ``lightmem import`` uses where it is
    there, and :class:`ScopeErase` (every trace of a tenant removed), without which
    ``erase_scope`` is refused.
    """

    # -- metadata --------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    # -- message journal -------------------------------------------------------------------
    def add_messages(self, messages: Sequence[Message]) -> list[Message]:
        """Journal messages (state ``sensory``); an id already journaled in the message's
        scope is skipped. Returns the new ones."""
        ...

    def messages_by_id(
        self, ids: Iterable[str], *, scope: Scope | None = None
    ) -> dict[str, Message]:
        """The journaled messages with these ids in exactly ``scope`` (``None``: any)."""
        ...

    def journal(self, state: str | None = None, scope: Scope | None = None) -> list[JournalRow]:
        """Journal rows in arrival order, by state and exact scope. A message's state, in
        pipeline order: ``sensory``, ``short_term``, ``batched``, ``extracted`` (or
        ``dropped``: a segment hook removed it)."""
        ...

    def allocate_topic_ids(self, count: int) -> list[int]: ...

    def assign_segments(
        self,
        assignments: dict[str, int],
        *,
        scope: Scope,
        contents: dict[str, str] | None = None,
        dropped: Sequence[str] = (),
    ) -> None:
        """Atomically: sensory messages to short-term with topic ids, edited contents stored,
        removed messages marked ``dropped``."""
        ...

    # -- extraction batches ----------------------------------------------------------------
    def create_batch(self, message_ids: Sequence[str], *, scope: Scope) -> str:
        """Move short-term messages of ``scope`` into a new ``pending`` batch; its id."""
        ...

    def merge_batches(self, batch_ids: Sequence[str]) -> str:
        """Move the messages of these unfinished, unclaimed batches into the last one,
        atomically; the others are removed. Returns the last id."""
        ...

    def batch(self, batch_id: str) -> Batch | None:
        """The batch, or ``None`` when there is no such batch."""
        ...

    def batches(
        self,
        states: Iterable[BatchState] = UNFINISHED_STATES,
        *,
        scope: Scope | None = None,
        due_by: _dt.datetime | None = None,
    ) -> list[Batch]:
        """The batches in one of ``states``, oldest first, in exactly ``scope`` (``None``:
        every scope); with ``due_by`` only those whose ``retry_at`` is unset or not later.
        One indexed query."""
        ...

    def pending_batches(self) -> list[str]:
        """The ids of every unfinished batch, oldest first."""
        ...

    def next_retry_at(self) -> _dt.datetime | None:
        """The earliest ``retry_at`` of the batches in :data:`SCHEDULED_STATES`."""
        ...

    def batch_messages(self, batch_id: str) -> list[JournalRow]: ...

    def claim_batch(self, batch_id: str) -> Batch | None:
        """Hand the batch to the caller to extract: it moves to ``running`` and is returned,
        or ``None`` when it is done, gone or claimed already. A store shared by several
        processes hands a batch to exactly one of them, and gives the claims of a process that
        died back (the embedded store, owned by one process, does so when it opens)."""
        ...

    def release_batch(self, batch_id: str) -> None:
        """A claimed batch the worker gives up without a verdict goes back to ``pending``."""
        ...

    def set_batch_state(
        self,
        batch_id: str,
        state: BatchState,
        *,
        error: str = "",
        retry_at: _dt.datetime | None = None,
        attempted: bool = False,
    ) -> None:
        """Record that the batch is ``failed``, ``held`` or ``waiting_for_budget`` (never
        ``done``: see :meth:`complete_batch`), why, and when it is retried; ``attempted``
        counts an extraction attempt."""
        ...

    def complete_batch(
        self,
        batch_id: str,
        entries: Sequence[MemoryEntry],
        *,
        unextracted: Sequence[str] = (),
        rest_state: BatchState = BatchState.FAILED,
        error: str = "",
        retry_at: _dt.datetime | None = None,
    ) -> list[MemoryEntry]:
        """Store a batch's entries and mark it done, atomically; returns the entries
        inserted (none when it was done already). ``unextracted`` messages move to a new batch
        in ``rest_state`` with ``error``, retried at ``retry_at``."""
        ...

    # -- entries ---------------------------------------------------------------------------
    def entries(
        self,
        ids: Iterable[str] | None = None,
        *,
        status: str | None = "active",
        scope: Scope | None = None,
        unindexed_only: bool = False,
        changed_since: int | None = None,
    ) -> list[MemoryEntry]: ...

    def get_entry(self, entry_id: str) -> MemoryEntry | None: ...

    def count_entries(self, status: str | None = "active") -> int: ...

    def mark_indexed(self, ids: Sequence[str], indexed: bool = True) -> None: ...

    def max_revision(self) -> int: ...

    def update_entry_text(self, entry_id: str, new_memory: str, reason: str) -> MemoryEntry: ...

    def retire_entry(
        self,
        entry_id: str,
        *,
        action: str,
        reason: str,
        replaced_by: str | None = None,
    ) -> None: ...

    def history(self, entry_id: str | None = None) -> list[dict[str, Any]]: ...

    # -- usage and the update queue --------------------------------------------------------
    def add_usage(self, operation: str, usage: Usage) -> None: ...

    def usage(self) -> dict[str, Usage]: ...

    def save_update_queue(self, queue: dict[str, list[tuple[str, float]]]) -> None: ...

    def update_queue(self) -> dict[str, list[tuple[str, float]]]: ...

    def clear_update_queue(self) -> None: ...

    # -- the whole store -------------------------------------------------------------------
    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@runtime_checkable
class EntryFacets(Protocol):
    """What a record store may also offer: the segment and speaker of many entries at once.

    The retrieval stages that read a whole pool of hits (``retrieval.named_speaker``,
    ``retrieval.segments``) use it where the store has it and read whole entries where it has
    not, so a store without it still works, only with more data read per search.
    """

    def entry_facets(self, ids: Sequence[str]) -> dict[str, tuple[int | None, str | None]]:
        """``{id: (topic_id, speaker)}`` of the active entries among ``ids``: the speaker's
        name, else its id; ids of no active entry are left out. A read of those columns, not
        of whole entries."""
        ...


@runtime_checkable
class EntryRestore(Protocol):
    """What a record store may also offer: entries and their history put back as an export
    file holds them (``lightmem import``).

    Without it an import stores the entries as an extraction's, through one batch per scope
    (:meth:`RecordStore.complete_batch`): with the store's own ``created_at``, ``updated_at``
    and ``add`` history rows, and without the exported history.
    """

    def restore_entries(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        """Insert ``entries`` as they are, atomically: id, status (any of
        ``ENTRY_STATUSES``), scope, ``time_stamp``, ``created_at`` and ``updated_at`` (the
        store's own time where one is ``None``), source message ids (the messages need not be
        journaled), metadata and every other field. No batch and no history row is written
        (the history comes with them, through :meth:`restore_history`); each inserted entry
        gets a new revision and is unindexed (:meth:`RecordStore.mark_indexed`). An id the
        store already has, or one given again within the call, is skipped and the stored
        entry left as it is. Returns the entries inserted, in the order given."""
        ...

    def restore_history(self, rows: Sequence[dict[str, Any]]) -> int:
        """Append history rows as :meth:`RecordStore.history` returns them (``entry_id``,
        ``action``, ``old_memory``, ``new_memory``, ``reason``, ``replaced_by``, ``at``: an ISO
        time stamp, the store's own time where it is ``None``), in the order given, after the
        rows already there, atomically. Returns the number of rows appended."""
        ...


@runtime_checkable
class EntryPositions(Protocol):
    """What a record store may also offer: where many entries stand in its order of entries.

    ``retrieval.exchange`` scores a hit with its exchange partners' (the turns next to it that
    another speaker said), so it needs to know which of a pool's entries were stored next to
    each other; a store without it leaves that stage out.
    """

    def entry_positions(self, ids: Sequence[str]) -> dict[str, int]:
        """``{id: position}`` of the entries among ``ids``, whatever their status (a search
        asks for entries it already knows to be active): a number that grows in the order
        entries were stored and is never reused, so that entries stored one after the other
        (as the entries of one batch, in the order given) differ by one, unless another writer
        stored entries between them. Ids of no entry are left out. A read of the index on
        ``id``, not of whole entries."""
        ...


@runtime_checkable
class ScopeErase(Protocol):
    """What a record store may also offer: every trace of a tenant removed, for
    ``LightMemory.erase_scope`` (``lightmem erase``, the service's erase endpoint).

    Without it an erase is refused before anything is removed: nothing else in the contract
    deletes messages, batches or history.
    """

    def erase_scope(
        self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> dict[str, Any]:
        """Remove, atomically, every message, extraction batch, entry (of any status), source
        link, history row and queued update of the scopes matching the fields given (a field
        not given matches any value: ``user_id="alice"`` matches Alice's scopes whatever their
        agent and run; a scope with the field unset does not match). The core gives at least
        one field. Returns ``{"entry_ids": [...], "entries": n, "messages": n, "history": n,
        "batches": n}``: the ids of the entries removed and how many of each were removed.
        Scopes that do not match keep everything."""
        ...
