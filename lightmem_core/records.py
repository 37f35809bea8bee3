"""The record store's interface: what the pipeline's stages ask of the system of record.

:class:`lightmem_core.store.SQLiteRecordStore` (SQLite in the memory directory) is the
embedded implementation; a server engine can provide another one with the same methods.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from lightmem_hookspecs import MemoryEntry, Message, Scope, Usage

if TYPE_CHECKING:
    from .store import JournalRow


@runtime_checkable
class RecordStore(Protocol):
    """The message journal, extraction batches, entries with provenance, history and usage."""

    # -- metadata --------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    # -- message journal -------------------------------------------------------------------
    def add_messages(self, messages: Sequence[Message]) -> list[Message]:
        """Journal messages (state ``sensory``); known ids are skipped. Returns the new ones."""
        ...

    def messages_by_id(
        self, ids: Iterable[str], *, scope: Scope | None = None
    ) -> dict[str, Message]: ...

    def journal(self, state: str | None = None, scope: Scope | None = None) -> list[JournalRow]:
        """Journal rows in arrival order, by state and exact scope."""
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
    def create_batch(self, message_ids: Sequence[str], *, scope: Scope) -> str: ...

    def merge_batches(self, batch_ids: Sequence[str]) -> str:
        """Move the messages of these unfinished batches into the last one, atomically; the
        others are removed. Returns the last id."""
        ...

    def pending_batches(self, *, due_by: str | None = None) -> list[str]:
        """Batches not yet extracted, oldest first; with ``due_by`` only those due for a retry."""
        ...

    def next_retry_at(self) -> str | None: ...

    def batch_messages(self, batch_id: str) -> list[JournalRow]: ...

    def batch_failed(self, batch_id: str, error: str, *, retry_at: str | None = None) -> None: ...

    def batch_info(self, batch_id: str) -> dict[str, Any] | None: ...

    def complete_batch(
        self,
        batch_id: str,
        entries: Sequence[MemoryEntry],
        *,
        unextracted: Sequence[str] = (),
        error: str = "",
        retry_at: str | None = None,
    ) -> list[MemoryEntry]:
        """Store a batch's entries and mark it done atomically; returns the entries inserted.
        ``unextracted`` messages move to a new failed batch retried at ``retry_at``."""
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
