"""The JSON forms of entries, hits and add results, shared by the service and its clients."""

from __future__ import annotations

import datetime as dt
from typing import Any

from lightmem_hookspecs import EntryChange, MemoryEntry, Scope, SearchHit, Usage

from .. import errors as _errors
from ..errors import (
    BackendError,
    ConfigError,
    EmptyScopeError,
    ExtractionError,
    InputError,
    LightMemError,
    ScopeRequiredError,
    StoreError,
    UnexpectedError,
)


def _time_out(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _time_in(value: Any) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


def entry_to_json(entry: MemoryEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "memory": entry.memory,
        "user_id": entry.scope.user_id,
        "agent_id": entry.scope.agent_id,
        "run_id": entry.scope.run_id,
        "status": entry.status,
        "time_stamp": _time_out(entry.time_stamp),
        "created_at": _time_out(entry.created_at),
        "updated_at": _time_out(entry.updated_at),
        "source_message_ids": list(entry.source_message_ids),
        "speaker_id": entry.speaker_id,
        "speaker_name": entry.speaker_name,
        "topic_id": entry.topic_id,
        "category": entry.category,
        "keywords": list(entry.keywords),
        "entities": list(entry.entities),
        "topic_summary": entry.topic_summary,
        "original_memory": entry.original_memory,
        "importance": entry.importance,
        "metadata": dict(entry.metadata),
    }


def entry_from_json(data: dict[str, Any]) -> MemoryEntry:
    return MemoryEntry(
        id=data["id"],
        memory=data["memory"],
        scope=Scope(data.get("user_id"), data.get("agent_id"), data.get("run_id")),
        status=data.get("status", "active"),
        time_stamp=_time_in(data.get("time_stamp")),
        created_at=_time_in(data.get("created_at")),
        updated_at=_time_in(data.get("updated_at")),
        source_message_ids=tuple(data.get("source_message_ids") or ()),
        speaker_id=data.get("speaker_id"),
        speaker_name=data.get("speaker_name"),
        topic_id=data.get("topic_id"),
        category=data.get("category"),
        keywords=tuple(data.get("keywords") or ()),
        entities=tuple(data.get("entities") or ()),
        topic_summary=data.get("topic_summary"),
        original_memory=data.get("original_memory"),
        importance=data.get("importance"),
        metadata=data.get("metadata") or {},
    )


def hit_to_json(hit: SearchHit) -> dict[str, Any]:
    return {
        "id": hit.id,
        "score": hit.score,
        "scores": dict(hit.scores),
        "ranks": dict(hit.ranks),
        "entry": None if hit.entry is None else entry_to_json(hit.entry),
    }


def hit_from_json(data: dict[str, Any]) -> SearchHit:
    entry = data.get("entry")
    return SearchHit(
        id=data["id"],
        score=data["score"],
        entry=None if entry is None else entry_from_json(entry),
        scores=dict(data.get("scores") or {}),
        ranks=dict(data.get("ranks") or {}),
    )


def usage_to_json(usage: Usage) -> dict[str, int]:
    return {
        "llm_calls": usage.llm_calls,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "embedder_calls": usage.embedder_calls,
        "embedded_texts": usage.embedded_texts,
    }


def add_result_to_json(result: Any) -> dict[str, Any]:
    return {
        "messages_received": result.messages_received,
        "messages_added": result.messages_added,
        "entries_added": list(result.entries_added),
        "batches_extracted": result.batches_extracted,
        "batches_pending": result.batches_pending,
        "usage": usage_to_json(result.usage),
    }


def add_result_from_json(data: dict[str, Any]) -> Any:
    from ..pipeline.ingest import AddResult

    return AddResult(
        messages_received=data["messages_received"],
        messages_added=data["messages_added"],
        entries_added=tuple(data["entries_added"]),
        batches_extracted=data["batches_extracted"],
        batches_pending=data["batches_pending"],
        usage=Usage(**data.get("usage", {})),
    )


def change_to_json(change: EntryChange) -> dict[str, Any]:
    return {
        "entry_id": change.entry_id,
        "action": change.action,
        "old_memory": change.old_memory,
        "new_memory": change.new_memory,
        "reason": change.reason,
        "replaced_by": change.replaced_by,
    }


def change_from_json(data: dict[str, Any]) -> EntryChange:
    return EntryChange(**data)


def history_to_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items()}


class NotFoundError(InputError):
    """The entry does not exist (or belongs to a scope the caller may not see)."""


class ConflictError(InputError):
    """The entry exists but is not in a state the call needs (e.g. already deleted)."""


class PayloadTooLargeError(InputError):
    """The request body, a message count or a ``limit`` is over the service's caps."""


class AuthError(LightMemError):
    """The request carried no valid API key."""


class ForbiddenError(LightMemError):
    """The API key may not act on the scope named (or on the whole memory)."""


class RateLimitedError(LightMemError):
    """The memory cannot take the request now (e.g. its LLM token budget is spent)."""


#: Error type -> HTTP status, most specific first.
STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (AuthError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (PayloadTooLargeError, 413),
    (RateLimitedError, 429),
    (EmptyScopeError, 422),
    (ScopeRequiredError, 422),
    (InputError, 422),
    (ConfigError, 400),
    (ExtractionError, 502),
    (BackendError, 503),
    (StoreError, 503),
    (UnexpectedError, 500),
    (LightMemError, 500),
)

#: Error name -> class, for clients turning an error body back into the exception.
ERROR_TYPES: dict[str, type[LightMemError]] = {
    **{
        name: cls
        for name, cls in vars(_errors).items()
        if isinstance(cls, type) and issubclass(cls, LightMemError)
    },
    **{cls.__name__: cls for cls, _ in STATUS if issubclass(cls, LightMemError)},
}


def status_of(exc: BaseException) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500
