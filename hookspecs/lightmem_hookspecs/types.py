"""Shared value types that flow between the LightMem core and its plugins."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

#: Entry statuses. Only ``active`` entries are returned by retrieval.
ENTRY_STATUSES: tuple[str, ...] = ("active", "superseded", "deleted")


@attrs.frozen
class Scope:
    """Who a message or memory belongs to. A query never returns another scope's entries."""

    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"user_id": self.user_id, "agent_id": self.agent_id, "run_id": self.run_id}


@attrs.frozen
class Message:
    """One normalized conversation message.

    ``id`` is stable: supplied by the caller or derived from content, time and position, so
    sending the same message twice adds nothing. ``content`` is what later stages see (possibly
    compressed); ``original_content`` keeps the text as the caller sent it.
    """

    id: str
    role: str
    content: str
    original_content: str
    time_stamp: _dt.datetime | None = None
    speaker_id: str | None = None
    speaker_name: str | None = None
    scope: Scope = attrs.field(factory=Scope)
    metadata: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def weekday(self) -> str | None:
        return self.time_stamp.strftime("%a") if self.time_stamp else None


@attrs.frozen
class Segment:
    """A run of consecutive messages on one topic, as cut by the topic segmenter."""

    topic_id: int
    messages: tuple[Message, ...]


@attrs.frozen
class MemoryEntry:
    """One long-term memory: an extracted fact, or a message kept as is when no LLM is configured.

    ``source_message_ids`` is the provenance: the journal ids of the messages the entry came from.
    ``time_stamp`` is the time of its source, not the time it was stored.
    """

    id: str
    memory: str
    source_message_ids: tuple[str, ...] = ()
    time_stamp: _dt.datetime | None = None
    speaker_id: str | None = None
    speaker_name: str | None = None
    topic_id: int | None = None
    scope: Scope = attrs.field(factory=Scope)
    category: str | None = None
    keywords: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    topic_summary: str | None = None
    original_memory: str | None = None
    importance: float | None = None
    status: str = "active"
    created_at: _dt.datetime | None = None
    updated_at: _dt.datetime | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def weekday(self) -> str | None:
        return self.time_stamp.strftime("%a") if self.time_stamp else None


@attrs.frozen
class EntryChange:
    """A change made to a stored entry by an update pass (online or offline)."""

    entry_id: str
    action: str  # "update" | "delete" | "supersede"
    old_memory: str | None
    new_memory: str | None
    reason: str = ""
    replaced_by: str | None = None


@attrs.frozen
class IndexRecord:
    """What an index (vector store, BM25, graph) stores for one entry.

    ``payload`` holds the filterable fields, see :class:`SearchFilter` for their names.
    ``vector`` is set for embedding retrievers and ``None`` otherwise.
    """

    id: str
    text: str
    payload: Mapping[str, Any] = attrs.field(factory=dict)
    vector: tuple[float, ...] | None = None


def _id_set(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _opt_ts(value: _dt.datetime | float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return to_epoch(value)
    return float(value)


def to_epoch(value: _dt.datetime) -> float:
    """Seconds since the epoch; naive datetimes are taken as UTC (how the core stores them)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)  # noqa: UP017 (3.10)
    return value.timestamp()


@attrs.frozen
class SearchFilter:
    """Restricts a search. Every backend must honour every field.

    Payload field names used by the core when indexing: ``user_id``, ``agent_id``, ``run_id``,
    ``speaker`` (speaker name or id), ``topic_id`` (int) and ``time_stamp`` (float, epoch seconds).
    Time bounds are epoch seconds (datetimes are converted). A ``None`` field does not restrict.
    """

    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    speaker: str | None = None
    topic_id: int | None = None
    time_gt: float | None = attrs.field(default=None, converter=_opt_ts)
    time_gte: float | None = attrs.field(default=None, converter=_opt_ts)
    time_lt: float | None = attrs.field(default=None, converter=_opt_ts)
    time_lte: float | None = attrs.field(default=None, converter=_opt_ts)
    exclude_ids: frozenset[str] = attrs.field(default=frozenset(), converter=_id_set)

    @property
    def is_empty(self) -> bool:
        return self == SearchFilter()

    def matches(self, record_id: str, payload: Mapping[str, Any]) -> bool:
        """Reference semantics of the filter, for backends that filter in Python."""
        if record_id in self.exclude_ids:
            return False
        for key in ("user_id", "agent_id", "run_id", "speaker", "topic_id"):
            wanted = getattr(self, key)
            if wanted is not None and payload.get(key) != wanted:
                return False
        ts = payload.get("time_stamp")
        bounds = (self.time_gt, self.time_gte, self.time_lt, self.time_lte)
        if any(b is not None for b in bounds):
            if ts is None:
                return False
            ts = float(ts)
            if self.time_gt is not None and not ts > self.time_gt:
                return False
            if self.time_gte is not None and not ts >= self.time_gte:
                return False
            if self.time_lt is not None and not ts < self.time_lt:
                return False
            if self.time_lte is not None and not ts <= self.time_lte:
                return False
        return True


@attrs.define
class SearchHit:
    """One retrieval result: the entry, its fused score and the score of each signal."""

    id: str
    score: float
    entry: MemoryEntry | None = None
    scores: dict[str, float] = attrs.field(factory=dict)
    ranks: dict[str, int] = attrs.field(factory=dict)
    #: Per graph retriever label, the relations that led to the entry, from a query entity
    #: (``["Alice -friend_of-> Bob", "Bob -lives_in-> Berlin"]``).
    paths: dict[str, list[str]] = attrs.field(factory=dict)


@attrs.define
class Usage:
    """Resource counters for one operation or a whole store."""

    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    embedder_calls: int = 0
    embedded_texts: int = 0

    def add(self, other: Usage) -> None:
        for field in attrs.fields(Usage):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@attrs.frozen
class Completion:
    """What a memory manager (an LLM) returned for one call.

    ``cached_tokens``: how many of the ``prompt_tokens`` were not evaluated again because a KV
    cache held them (a server's prefix cache, as ``usage.prompt_tokens_details.cached_tokens``
    reports; a local runtime's restored state). 0 when unknown.
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    finish_reason: str | None = None
    cached_tokens: int = 0


@attrs.define
class QueryContext:
    """A retrieval request; ``lightmem_query_prepared`` implementations may change it in place."""

    query: str
    limit: int
    strategy: str
    filter: SearchFilter = attrs.field(factory=SearchFilter)


#: Every operation name the core runs through ``lightmem_run_operation``.
OPERATION_NAMES: tuple[str, ...] = (
    "add_memory",
    "compress",
    "segment",
    "extract",
    "llm.complete",
    "embed",
    "index",
    "retrieve",
    "search",
    "rerank",
    "update",
)


@attrs.define
class Operation:
    """A unit of work the core runs through ``lightmem_run_operation`` so wrappers can see it.

    ``name`` is one of :data:`OPERATION_NAMES`. ``usage`` is filled in as the operation runs
    and includes the usage of every operation nested inside it (an ``add_memory`` operation
    totals the ``llm.complete`` and ``embed`` calls it made); wrappers read it after ``yield``.
    ``parent`` is the operation this one runs inside, or ``None`` at the top.
    """

    name: str
    call: Callable[[], Any]
    backend: str | None = None
    details: dict[str, Any] = attrs.field(factory=dict)
    usage: Usage = attrs.field(factory=Usage)
    parent: Operation | None = None


@attrs.frozen
class HookContext:
    """What an observer or wrapper hook implementation learns about where it runs.

    ``memory_dir`` is the memory's directory, ``scope`` the scope of the call that triggered the
    hook (``None`` for work over every scope, such as an offline update pass), ``plugin`` the
    name the configuration selected this plugin by and ``options`` its options from the
    configuration (``hooks: [{"plugin": name, "options": {...}}]``).
    """

    memory_dir: str
    scope: Scope | None = None
    plugin: str = ""
    options: Mapping[str, Any] = attrs.field(factory=dict)
