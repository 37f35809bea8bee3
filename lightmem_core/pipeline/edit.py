"""The entry-editing stage: the one way a stored entry's text or status changes.

A change goes to the record store (history included), then to every index: a rewritten entry is
indexed again, a retired one (deleted by the application, superseded by the update pass) leaves
them. The facade's ``update`` and ``delete`` and the update pass's decisions all edit through it;
the caller holds the memory's lock and announces the changes (``lightmem_entries_changed``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lightmem_hookspecs import EntryChange, MemoryEntry

from ..errors import InputError

if TYPE_CHECKING:
    from .runtime import Runtime

#: How an entry can be retired, and the status it then has.
RETIRE_ACTIONS = ("delete", "supersede")


class EntryEditor:
    """Rewrites and retires entries in the record store and every index."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def active(self, entry_id: str) -> MemoryEntry:
        """The active entry ``entry_id``, or an :class:`InputError` saying why not."""
        entry = self.rt.store.get_entry(entry_id)
        if entry is None:
            raise InputError(f"entry {entry_id!r} does not exist")
        if entry.status != "active":
            raise InputError(f"entry {entry_id!r} is {entry.status}, not active")
        return entry

    def rewrite(
        self, target: MemoryEntry, new_memory: str, reason: str
    ) -> tuple[MemoryEntry, EntryChange]:
        """Give ``target`` the text ``new_memory``; the stored entry and the change."""
        rt = self.rt
        entry = rt.store.update_entry_text(target.id, new_memory, reason)
        rt.indexer.index([entry])
        return entry, EntryChange(target.id, "update", target.memory, new_memory, reason)

    def retire(
        self,
        target: MemoryEntry,
        *,
        action: str,
        reason: str,
        replaced_by: str | None = None,
        note: str = "",
    ) -> EntryChange:
        """Delete or supersede ``target``: it stays in the store and its history (with
        ``reason``, or ``note`` when given, as the stored reason) and leaves every index."""
        if action not in RETIRE_ACTIONS:
            raise ValueError(f"retire: action must be one of {RETIRE_ACTIONS}, got {action!r}")
        rt = self.rt
        rt.store.retire_entry(
            target.id, action=action, reason=note or reason, replaced_by=replaced_by
        )
        rt.indexer.unindex([target.id])
        return EntryChange(target.id, action, target.memory, None, reason, replaced_by)
