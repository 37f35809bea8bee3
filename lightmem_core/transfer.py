"""Moving a memory: ``lightmem export FILE`` / ``lightmem import FILE`` (versioned JSONL).

The file, one JSON object per line:

1. a header ``{"format": "lightmem-export", "version": 1, "embedder": {...} | null, ...}``;
   ``embedder`` is the fingerprint of the embedder that made the vectors (model name,
   dimension, speaker weight);
2. ``{"type": "entry", "entry": {...}, "vector": "<base64 float32>" | null}`` per entry, every
   status, with provenance (source message ids, batch), original time stamps and metadata; an
   active image entry's line also has ``"image": {"data": "<base64>" | "reference": "<path>",
   "vector": "<base64 float32>" | null}`` (the header's ``multimodal_embedder`` made that
   vector; see ``images.py``);
3. ``{"type": "history", ...}`` per change of an entry (add, update, delete, supersede);
4. ``{"type": "message", "message": {...}}`` per journaled message not extracted yet;
5. ``{"type": "end", "entries": n, "history": n, "messages": n}``: a file without it, or with
   other counts, was cut short.

An import reads the whole file first and refuses it, with the line number, if any line is bad
(unless ``skip_bad_lines``, which skips them and says which); nothing is written before that.
It is idempotent: entries, history and messages already there are not added again, and an
entry id the file repeats is imported, and indexed, once (its first line). Vectors in
the file are written as they are when the target's embedder has the file's fingerprint;
otherwise the entries are embedded again by the target's embedder; a target without a vector
store embeds nothing (the report's ``reembedded`` and ``vectors`` say which happened). An
image is checked as a message's image is (format, size, ``images.allowed_roots`` for a
reference) and must have the SHA-256 its entry records; a copied image is stored again by
content hash in the target, and embedded again by its multimodal embedder unless the header's
fingerprint is that embedder's.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import attrs
from lightmem_hookspecs import (
    ENTRY_STATUSES,
    EntryRestore,
    IndexRecord,
    MemoryEntry,
    Message,
    RecordStore,
    Scope,
    TextBulkLoad,
    VectorBulkLoad,
)

from .errors import InputError
from .fingerprint import EmbedderChangedError, fingerprint
from .images import (
    ImportedImage,
    export_image,
    image_index,
    index_imported,
    multimodal_fingerprint,
    place_imported,
    read_image_line,
)

__all__ = ["EmbedderChangedError", "export_memory", "import_memory"]

if TYPE_CHECKING:
    from .memory import LightMemory
    from .pipeline.index import Indexer

FORMAT = "lightmem-export"
VERSION = 1
CHUNK = 2000
_UNPROCESSED = ("sensory", "short_term", "batched")


# -- values <-> JSON ------------------------------------------------------------------------


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _entry_json(e: MemoryEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "memory": e.memory,
        "source_message_ids": list(e.source_message_ids),
        "time_stamp": _time(e.time_stamp),
        "speaker_id": e.speaker_id,
        "speaker_name": e.speaker_name,
        "topic_id": e.topic_id,
        "scope": e.scope.as_dict(),
        "category": e.category,
        "keywords": list(e.keywords),
        "entities": list(e.entities),
        "topic_summary": e.topic_summary,
        "original_memory": e.original_memory,
        "importance": e.importance,
        "status": e.status,
        "created_at": _time(e.created_at),
        "updated_at": _time(e.updated_at),
        "metadata": json.loads(json.dumps(dict(e.metadata), default=str)),
    }


def _message_json(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "role": m.role,
        "content": m.content,
        "original_content": m.original_content,
        "time_stamp": _time(m.time_stamp),
        "speaker_id": m.speaker_id,
        "speaker_name": m.speaker_name,
        "scope": m.scope.as_dict(),
        "metadata": json.loads(json.dumps(dict(m.metadata), default=str)),
    }


def _vector_text(vector: Any) -> str:
    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


# -- export --------------------------------------------------------------------------------


@attrs.frozen
class ExportReport:
    path: str
    entries: int
    history: int
    messages: int
    vectors: bool


def export_memory(mem: LightMemory, path: str | os.PathLike[str]) -> ExportReport:
    """Write the memory to ``path`` (see the module docs); vectors are computed as the vector
    stores hold them, by this memory's embedder."""
    rt = mem._rt
    indexer = cast("Indexer", rt.indexer)
    store = rt.store
    embedder = rt.embedder
    weight = rt.config.speaker_vector_weight
    entries = store.entries(status=None)
    images = image_index(rt)
    if images is not None:
        images.check()  # its vectors are the configured multimodal embedder's
    history = store.history()
    messages = [row.message for state in _UNPROCESSED for row in store.journal(state=state)]
    target = Path(path)
    tmp = target.with_name(target.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as out:

        def line(obj: dict[str, Any]) -> None:
            out.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")

        line(
            {
                "format": FORMAT,
                "version": VERSION,
                "embedder": fingerprint(embedder, weight),
                "multimodal_embedder": multimodal_fingerprint(images),
                "exported_at": dt.datetime.now(dt.UTC).isoformat(),
            }
        )
        for start in range(0, len(entries), CHUNK):
            part = entries[start : start + CHUNK]
            vectors: Sequence[Any] = (
                indexer._vectors(embedder, part) if embedder is not None else [None] * len(part)
            )
            for e, v in zip(part, vectors, strict=True):
                record = {
                    "type": "entry",
                    "entry": _entry_json(e),
                    "vector": None if v is None else _vector_text(v),
                }
                image = export_image(images, e) if e.category == "image" else None
                line(record if image is None else {**record, "image": image})
        for h in history:
            line({"type": "history", **{k: h.get(k) for k in _HISTORY_KEYS}})
        for m in messages:
            line({"type": "message", "message": _message_json(m)})
        line(
            {
                "type": "end",
                "entries": len(entries),
                "history": len(history),
                "messages": len(messages),
            }
        )
    os.replace(tmp, target)
    return ExportReport(
        str(target), len(entries), len(history), len(messages), embedder is not None
    )


_HISTORY_KEYS = ("entry_id", "action", "old_memory", "new_memory", "reason", "replaced_by", "at")


# -- reading a file -------------------------------------------------------------------------


class _Bad(ValueError):
    pass


def _str(value: Any, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or (not optional and not value):
        wanted = "a string or null" if optional else "a non-empty string"
        raise _Bad(f"{where}: expected {wanted}, got {value!r}")
    return value


def _datetime(value: Any, where: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Bad(f"{where}: expected an ISO time stamp or null, got {value!r}")
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise _Bad(f"{where}: not an ISO time stamp: {value!r}") from None


def _scope(value: Any, where: str) -> Scope:
    if not isinstance(value, dict) or set(value) - {"user_id", "agent_id", "run_id"}:
        raise _Bad(f"{where}: expected an object with user_id, agent_id, run_id, got {value!r}")
    for key in ("user_id", "agent_id", "run_id"):
        v = value.get(key)
        if v is not None and (not isinstance(v, str) or not v):
            raise _Bad(f"{where}.{key}: expected a non-empty string or null, got {v!r}")
    return Scope(value.get("user_id"), value.get("agent_id"), value.get("run_id"))


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Bad(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def _parse_entry(obj: dict[str, Any]) -> MemoryEntry:
    e = obj.get("entry")
    if not isinstance(e, dict):
        raise _Bad("entry: expected an object")
    status = e.get("status", "active")
    if status not in ENTRY_STATUSES:
        raise _Bad(f"entry.status: expected one of {', '.join(ENTRY_STATUSES)}, got {status!r}")
    topic = e.get("topic_id")
    if topic is not None and (not isinstance(topic, int) or isinstance(topic, bool)):
        raise _Bad(f"entry.topic_id: expected an integer or null, got {topic!r}")
    importance = e.get("importance")
    if importance is not None and not isinstance(importance, int | float):
        raise _Bad(f"entry.importance: expected a number or null, got {importance!r}")
    metadata = e.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _Bad(f"entry.metadata: expected an object, got {metadata!r}")
    return MemoryEntry(
        id=_str(e.get("id"), "entry.id") or "",
        memory=_str(e.get("memory"), "entry.memory") or "",
        source_message_ids=_strings(e.get("source_message_ids", []), "entry.source_message_ids"),
        time_stamp=_datetime(e.get("time_stamp"), "entry.time_stamp"),
        speaker_id=_str(e.get("speaker_id"), "entry.speaker_id", optional=True),
        speaker_name=_str(e.get("speaker_name"), "entry.speaker_name", optional=True),
        topic_id=topic,
        scope=_scope(e.get("scope", {}), "entry.scope"),
        category=_str(e.get("category"), "entry.category", optional=True),
        keywords=_strings(e.get("keywords", []), "entry.keywords"),
        entities=_strings(e.get("entities", []), "entry.entities"),
        topic_summary=_str(e.get("topic_summary"), "entry.topic_summary", optional=True),
        original_memory=_str(e.get("original_memory"), "entry.original_memory", optional=True),
        importance=importance,
        status=status,
        created_at=_datetime(e.get("created_at"), "entry.created_at"),
        updated_at=_datetime(e.get("updated_at"), "entry.updated_at"),
        metadata=metadata,
    )


def _parse_message(obj: dict[str, Any]) -> Message:
    m = obj.get("message")
    if not isinstance(m, dict):
        raise _Bad("message: expected an object")
    metadata = m.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _Bad(f"message.metadata: expected an object, got {metadata!r}")
    content = _str(m.get("content"), "message.content") or ""
    return Message(
        id=_str(m.get("id"), "message.id") or "",
        role=_str(m.get("role"), "message.role") or "",
        content=content,
        original_content=_str(m.get("original_content", content), "message.original_content")
        or content,
        time_stamp=_datetime(m.get("time_stamp"), "message.time_stamp"),
        speaker_id=_str(m.get("speaker_id"), "message.speaker_id", optional=True),
        speaker_name=_str(m.get("speaker_name"), "message.speaker_name", optional=True),
        scope=_scope(m.get("scope", {}), "message.scope"),
        metadata=metadata,
    )


def _parse_history(obj: dict[str, Any]) -> dict[str, Any]:
    row = {k: obj.get(k) for k in _HISTORY_KEYS}
    _str(row["entry_id"], "entry_id")
    if row["action"] not in ("add", "update", "delete", "supersede"):
        raise _Bad(f"action: expected add, update, delete or supersede, got {row['action']!r}")
    for key in ("old_memory", "new_memory", "replaced_by"):
        _str(row[key], key, optional=True)
    row["reason"] = _str(row.get("reason") or "", "reason", optional=True) or ""
    _datetime(row["at"], "at")
    return row


def _vector(value: Any, dimension: int | None) -> Any:
    if value is None:
        return None
    import numpy as np

    if not isinstance(value, str):
        raise _Bad("vector: expected base64 text or null")
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise _Bad("vector: not base64") from None
    if dimension is not None and len(raw) != 4 * dimension:
        raise _Bad(f"vector: {len(raw) // 4} values, the header's embedder makes {dimension}")
    return np.frombuffer(raw, dtype="<f4")


@attrs.define
class _Parsed:
    header: dict[str, Any]
    entries: list[tuple[MemoryEntry, Any]] = attrs.Factory(list)
    history: list[dict[str, Any]] = attrs.Factory(list)
    messages: list[Message] = attrs.Factory(list)
    skipped: list[tuple[int, str]] = attrs.Factory(list)
    images: dict[str, ImportedImage] = attrs.Factory(dict)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8") as f:
        yield from enumerate(f, start=1)


def read_export(
    path: str | os.PathLike[str], *, skip_bad_lines: bool = False, images: Any = None
) -> _Parsed:
    """Parse and check a whole export file; :class:`InputError` naming the line(s) if bad.
    ``images``: the target's ``images`` options (``None``: it has no image memory)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file; give the path of a file written by lightmem export")
    errors: list[tuple[int, str]] = []
    parsed: _Parsed | None = None
    end: tuple[int, dict[str, Any]] | None = None
    last = 0
    try:
        for number, text in _lines(p):
            last = number
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                errors.append((number, f"not JSON ({exc.msg} at column {exc.colno})"))
                continue
            if not isinstance(obj, dict):
                errors.append((number, "expected a JSON object"))
                continue
            if parsed is None:
                if obj.get("format") != FORMAT:
                    raise InputError(
                        f"{p}:{number}: not a LightMem export (the first line must be its "
                        f"header, format {FORMAT!r})"
                    )
                version = obj.get("version")
                if not isinstance(version, int) or version > VERSION:
                    raise InputError(
                        f"{p}:{number}: export format version {version!r}, newer than this "
                        f"LightMem reads ({VERSION}); upgrade lightmem-core to import it"
                    )
                parsed = _Parsed(header=obj)
                continue
            if end is not None:
                errors.append((number, "a line after the end line"))
                continue
            kind = obj.get("type")
            dimension = (parsed.header.get("embedder") or {}).get("dimension")
            try:
                if kind == "entry":
                    entry = _parse_entry(obj)
                    vector = _vector(obj.get("vector"), dimension)
                    if "image" in obj:
                        parsed.images[entry.id] = _image(obj["image"], entry, parsed, images)
                    parsed.entries.append((entry, vector))
                elif kind == "history":
                    parsed.history.append(_parse_history(obj))
                elif kind == "message":
                    parsed.messages.append(_parse_message(obj))
                elif kind == "end":
                    end = (number, obj)
                else:
                    raise _Bad(f"type: expected entry, history, message or end, got {kind!r}")
            except _Bad as exc:
                errors.append((number, str(exc)))
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not UTF-8 text ({exc})") from None
    if parsed is None:
        raise InputError(f"{p}:1: empty file, not a LightMem export")
    if end is None:
        raise InputError(
            f"{p}:{last}: the file ends without its end line: it was cut short (truncated). "
            f"Export again; nothing was imported."
        )
    counts = {k: end[1].get(k) for k in ("entries", "history", "messages")}
    have = {
        "entries": len(parsed.entries),
        "history": len(parsed.history),
        "messages": len(parsed.messages),
    }
    if not errors and counts != have:
        raise InputError(
            f"{p}:{end[0]}: the end line counts {counts}, the file holds {have}: lines are "
            f"missing or were added. Export again; nothing was imported."
        )
    if errors and not skip_bad_lines:
        shown = "\n".join(f"  {p}:{n}: {m}" for n, m in errors[:10])
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise InputError(
            f"{p}: {len(errors)} bad line(s); nothing was imported (import with "
            f"--skip-bad-lines to import the others):\n{shown}{more}"
        )
    parsed.skipped = errors
    return parsed


def _image(value: Any, entry: MemoryEntry, parsed: _Parsed, options: Any) -> ImportedImage:
    try:
        return read_image_line(value, entry, parsed.header, options)
    except ValueError as exc:
        raise _Bad(str(exc)) from None


# -- import --------------------------------------------------------------------------------


@attrs.frozen
class ImportReport:
    entries_added: int
    history_added: int
    messages_added: int
    #: Whether the entries' vectors were made again by this memory's embedder (another
    #: embedder made the file's); false when they were written as exported, and when this
    #: memory has no vector store (nothing was embedded).
    reembedded: bool
    skipped_lines: tuple[tuple[int, str], ...]
    #: Image entries put into the image index, and whether their images were embedded again.
    images_added: int = 0
    images_reembedded: bool = False
    #: Whether the entries' vectors went into the vector stores (as exported or re-embedded);
    #: false when nothing was added or this memory has no vector store.
    vectors: bool = False


def import_memory(
    mem: LightMemory, path: str | os.PathLike[str], *, skip_bad_lines: bool = False
) -> ImportReport:
    """Read an export file into this memory (see the module docs)."""
    rt = mem._rt
    options = rt.config.images if rt.config.multimodal_embedder is not None else None
    parsed = read_export(path, skip_bad_lines=skip_bad_lines, images=options)
    store = rt.store
    embedder = rt.embedder
    same = (
        embedder is not None
        and parsed.header.get("embedder") == fingerprint(embedder, rt.config.speaker_vector_weight)
        and all(v is not None for _, v in parsed.entries)
    )
    with rt.lock:
        rt.indexer.open()
        images = image_index(rt)
        if images is not None and parsed.images:
            images.check()  # another multimodal embedder's index is refused before any write
        parsed.entries = [
            (place_imported(rt, e, parsed.images[e.id]) if e.id in parsed.images else e, v)
            for e, v in parsed.entries
        ]
        added = _restore_entries(store, [e for e, _ in parsed.entries])
        new_ids = {e.id for e in added}
        history = [h for h in parsed.history if h["entry_id"] in new_ids]
        history_added = _restore_history(store, history)
        messages_added = len(store.add_messages(parsed.messages))
        active = [
            (e, v) for e, v in _first_of_each(parsed.entries, new_ids) if e.status == "active"
        ]
        if same:
            _load_indexes(rt, active)
        else:
            for start in range(0, len(active), CHUNK):
                rt.indexer.index([e for e, _ in active[start : start + CHUNK]])
        images_added, images_reembedded = index_imported(
            rt, [e for e, _ in active], parsed.images, parsed.header
        )
        rt.indexer.flush()
    vectors = bool(active) and embedder is not None and bool(rt.backends.vector_indexes())
    return ImportReport(
        entries_added=len(added),
        history_added=history_added,
        messages_added=messages_added,
        reembedded=vectors and not same,
        skipped_lines=tuple(parsed.skipped),
        images_added=images_added,
        images_reembedded=images_reembedded,
        vectors=vectors,
    )


def _first_of_each(
    entries: list[tuple[MemoryEntry, Any]], ids: set[str]
) -> list[tuple[MemoryEntry, Any]]:
    """The entries (with their vectors) of ``ids``, each once: the first line of an id the
    file repeats, the one the store restored. An index is given each id once."""
    seen: set[str] = set()
    out: list[tuple[MemoryEntry, Any]] = []
    for e, v in entries:
        if e.id in ids and e.id not in seen:
            seen.add(e.id)
            out.append((e, v))
    return out


def _restore_entries(store: RecordStore, entries: list[MemoryEntry]) -> list[MemoryEntry]:
    """Insert entries as they were (ids, statuses, time stamps); those present are skipped."""
    if isinstance(store, EntryRestore):
        out: list[MemoryEntry] = []
        for start in range(0, len(entries), CHUNK):
            out += store.restore_entries(entries[start : start + CHUNK])
        return out
    # Any RecordStore: through one batch per scope (complete_batch skips known ids).
    by_scope: dict[Scope, list[MemoryEntry]] = {}
    for e in entries:
        by_scope.setdefault(e.scope, []).append(e)
    stored: list[MemoryEntry] = []
    for scope, group in by_scope.items():
        batch_id = store.create_batch([], scope=scope)
        store.claim_batch(batch_id)
        stored += store.complete_batch(batch_id, group)
    return stored


def _restore_history(store: RecordStore, rows: list[dict[str, Any]]) -> int:
    """The file's history of the entries added, where the store can restore it."""
    if not isinstance(store, EntryRestore) or not rows:
        return 0
    return int(store.restore_history(rows))


def _bulk_load(
    index: object, vectors: bool
) -> Callable[[Iterable[Sequence[IndexRecord]]], int] | None:
    """A vector store's ``bulk_upsert`` (:class:`VectorBulkLoad`) or a text index's
    ``bulk_index`` (:class:`TextBulkLoad`), where it offers one."""
    if vectors:
        return index.bulk_upsert if isinstance(index, VectorBulkLoad) else None
    return index.bulk_index if isinstance(index, TextBulkLoad) else None


def _load_indexes(rt: Any, active: list[tuple[MemoryEntry, Any]]) -> None:
    """Write the file's vectors as they are (the embedder matches) and the texts, chunk by
    chunk, or in one pass where an index offers it (``VectorBulkLoad``, ``TextBulkLoad``);
    then mark the entries indexed."""
    from .pipeline.index import _floats, index_record

    # The texts' records once (the text indexes read them; the vectors' add the vector).
    texts = [index_record(e) for e, _ in active]

    def chunks(vectors: bool) -> Iterator[list[Any]]:
        for start in range(0, len(active), CHUNK):
            part = texts[start : start + CHUNK]
            if vectors:
                pairs = zip(part, active[start : start + CHUNK], strict=True)
                part = [attrs.evolve(r, vector=tuple(_floats(v))) for r, (_, v) in pairs]
            yield part

    def load(indexes: Sequence[Any], vectors: bool) -> None:
        """Each index through its bulk load where it has one, else chunk by chunk."""
        for index in indexes:
            bulk = _bulk_load(index, vectors)
            if bulk is not None:
                rt.run(
                    "index",
                    lambda bulk=bulk: bulk(chunks(vectors)),
                    action=bulk.__name__,
                    items=len(active),
                )
            else:
                for part in chunks(vectors):
                    rt.indexer._call(index, "upsert" if vectors else "index", part)

    vector_indexes, text_indexes = rt.backends.vector_indexes(), rt.backends.text_indexes()
    if vector_indexes and text_indexes:
        # The vector and text indexes are separate stores: loaded side by side (a vector
        # store's bulk load is mostly its index build, in its own process or native code).
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="lightmem-import") as pool:
            vectors_loaded = pool.submit(load, vector_indexes, True)
            try:
                load(text_indexes, False)
            finally:
                vectors_loaded.result()  # waits; its error, if any, is raised here
    else:
        load(vector_indexes, True)
        load(text_indexes, False)
    for start in range(0, len(active), CHUNK):
        part = active[start : start + CHUNK]
        for graph in rt.backends.graphs():
            rt.graph.index(graph, [e for e, _ in part])
        rt.store.mark_indexed([e.id for e, _ in part])
