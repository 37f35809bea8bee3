"""Expiring memories: an entry may carry an expiry (``metadata["expires_at"]``, ISO 8601 UTC).

It comes from the messages the entry was made from (a message's ``expires_at`` key: an ISO
time stamp, a ``datetime`` or epoch seconds; the earliest of its sources' wins) or, without
one, from the configuration's ``memory_ttl`` (seconds after the entry is stored). An expired
entry is not returned by ``search``, ``retrieve``, ``get`` or ``get_all``; the update pass
(``offline_update_all_entries``) retires it with a ``delete`` history record whose reason says
when it expired.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from lightmem_hookspecs import EntryChange, JournalRow, MemoryEntry, Message

from ..errors import InputError
from ..messages import parse_time
from .runtime import Runtime

#: The metadata key holding an entry's (or a message's) expiry.
EXPIRES_KEY = "expires_at"


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def message_expiry(message: Message, where: str = "expires_at") -> dt.datetime | None:
    raw = message.metadata.get(EXPIRES_KEY) if message.metadata else None
    if raw is None:
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        try:
            return dt.datetime.fromtimestamp(raw, dt.UTC)
        except (ValueError, OverflowError, OSError) as exc:
            raise InputError(f"{where}: {raw!r} is not a usable time: {exc}") from exc
    parsed = parse_time(raw, where=where)
    return None if parsed is None else _utc(parsed)


def check_messages(messages: Sequence[Message]) -> None:
    """Refuse an unusable ``expires_at`` (naming the message) before anything is written."""
    for i, message in enumerate(messages):
        message_expiry(message, f"messages[{i}].expires_at")


def stamp(
    ttl: float | None, entries: Sequence[MemoryEntry], rows: Iterable[JournalRow]
) -> list[MemoryEntry]:
    """``entries`` with their expiry set from their source messages or the default TTL."""
    by_id = {r.message.id: r.message for r in rows}
    now = dt.datetime.now(dt.UTC)
    out = []
    for entry in entries:
        limits = [
            t
            for t in (message_expiry(by_id[m]) for m in entry.source_message_ids if m in by_id)
            if t is not None
        ]
        if not limits and ttl:
            limits.append(now + dt.timedelta(seconds=ttl))
        if limits:
            entry = attrs.evolve(
                entry, metadata={**entry.metadata, EXPIRES_KEY: min(limits).isoformat()}
            )
        out.append(entry)
    return out


def expires_at(entry: MemoryEntry) -> dt.datetime | None:
    raw = entry.metadata.get(EXPIRES_KEY) if entry.metadata else None
    if not isinstance(raw, str):
        return None
    try:
        return _utc(dt.datetime.fromisoformat(raw))
    except ValueError:
        return None


def expired(entry: MemoryEntry | None, now: dt.datetime | None = None) -> bool:
    if entry is None:
        return False
    when = expires_at(entry)
    return when is not None and when <= (now or dt.datetime.now(dt.UTC))


def live(items: Iterable[Any], entry_of: Any = lambda x: x) -> list[Any]:
    """The items whose entry has not expired."""
    now = dt.datetime.now(dt.UTC)
    return [item for item in items if not expired(entry_of(item), now)]


def purge(rt: Runtime) -> list[EntryChange]:
    """Retire every expired active entry (history: ``delete``, reason "expired at ...")."""
    now = dt.datetime.now(dt.UTC)
    with rt.lock:
        gone = [e for e in rt.store.entries(status="active") if expired(e, now)]
        changes = []
        for entry in gone:
            reason = f"expired at {expires_at(entry).isoformat()}"  # type: ignore[union-attr]
            with rt.hooks.scope(entry.scope):
                rt.store.retire_entry(entry.id, action="delete", reason=reason)
            changes.append(EntryChange(entry.id, "delete", entry.memory, None, reason))
        if gone:
            rt.indexer.open()
            rt.indexer.unindex([e.id for e in gone])
            rt.hooks.entries_changed(changes)
    return changes
