"""The embedded record store: SQLite (WAL) system of record for messages, batches, entries,
history and usage (implements :class:`lightmem_hookspecs.RecordStore`)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
from lightmem_hookspecs import (
    CLAIMABLE_STATES,
    SCHEDULED_STATES,
    UNFINISHED_STATES,
    Batch,
    BatchState,
    JournalRow,
    MemoryEntry,
    Message,
    Scope,
    Usage,
)

from .errors import InputError, StoreError
from .scope import SCOPE_FIELDS, scope_key

#: 2: message ids unique per scope (``scope_key``), unset scope values stored as NULL (never
#: ""), batches with a retry time (``next_attempt_at``).
#: 3: a batch's state is one of :class:`~lightmem_hookspecs.BatchState` (``held`` and
#: ``waiting_for_budget`` are states, no longer a year-9999 retry time or an error prefix), and
#: it carries its scope; one index on (state, scope, age) finds the batches in a state.
SCHEMA_VERSION = 3

#: Schema 2's conventions, read only to migrate: a held batch's retry time and the error text
#: a batch waiting for the token budget began with.
_V2_HELD_AT = "9999-12-31T00:00:00.000000+00:00"
_V2_WAITING = "waiting for the LLM token budget"

_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"

_MESSAGES = """
CREATE TABLE IF NOT EXISTS {name} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    scope_key TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    original_content TEXT NOT NULL,
    time_stamp TEXT,
    speaker_id TEXT,
    speaker_name TEXT,
    user_id TEXT, agent_id TEXT, run_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL DEFAULT 'sensory',
    topic_id INTEGER,
    batch_id TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (scope_key, id)
);
"""

_SCHEMA = (
    _META
    + _MESSAGES.replace("{name}", "messages")
    + """
CREATE INDEX IF NOT EXISTS messages_state ON messages(state, seq);
CREATE INDEX IF NOT EXISTS messages_scope ON messages(scope_key, state, seq);
CREATE INDEX IF NOT EXISTS messages_batch ON messages(batch_id);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    scope_key TEXT,
    user_id TEXT, agent_id TEXT, run_id TEXT
);
CREATE INDEX IF NOT EXISTS batches_state ON batches(state, scope_key, created_at);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    memory TEXT NOT NULL,
    original_memory TEXT,
    time_stamp TEXT,
    speaker_id TEXT,
    speaker_name TEXT,
    topic_id INTEGER,
    user_id TEXT, agent_id TEXT, run_id TEXT,
    category TEXT,
    keywords TEXT NOT NULL DEFAULT '[]',
    entities TEXT NOT NULL DEFAULT '[]',
    topic_summary TEXT,
    importance REAL,
    status TEXT NOT NULL DEFAULT 'active',
    replaced_by TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    batch_id TEXT,
    indexed INTEGER NOT NULL DEFAULT 0,
    revision INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_status ON entries(status);
CREATE INDEX IF NOT EXISTS entries_indexed ON entries(indexed);
CREATE INDEX IF NOT EXISTS entries_revision ON entries(revision);
-- what a search reads of each hit of its pool (entry_facets), without visiting the rows
CREATE INDEX IF NOT EXISTS entries_facets
    ON entries(id, status, topic_id, speaker_name, speaker_id);
CREATE TABLE IF NOT EXISTS entry_sources (
    entry_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (entry_id, message_id)
);
CREATE INDEX IF NOT EXISTS entry_sources_message ON entry_sources(message_id);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id TEXT NOT NULL,
    action TEXT NOT NULL,
    old_memory TEXT,
    new_memory TEXT,
    reason TEXT NOT NULL DEFAULT '',
    replaced_by TEXT,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_entry ON history(entry_id);
CREATE TABLE IF NOT EXISTS usage (
    operation TEXT PRIMARY KEY,
    llm_calls INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    embedder_calls INTEGER NOT NULL DEFAULT 0,
    embedded_texts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS update_queue (
    entry_id TEXT PRIMARY KEY,
    candidates TEXT NOT NULL,
    built_at TEXT NOT NULL
);
"""
)

_MESSAGE_COLUMNS = (
    "seq, id, role, content, original_content, time_stamp, speaker_id, speaker_name, "
    "user_id, agent_id, run_id, metadata, state, topic_id, batch_id, created_at"
)


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _at(value: dt.datetime | None) -> str | None:
    """A retry time as stored: UTC, microseconds, so that stored times sort as text."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _ts_out(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ts_in(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def new_id() -> str:
    return uuid.uuid4().hex


#: The first bytes of every SQLite database file.
_SQLITE_HEADER = b"SQLite format 3\x00"


def check_store_file(path: Path) -> None:
    """Refuse an existing record store file that is empty, not SQLite, or shorter than the
    pages its header counts (truncated), before SQLite opens it and anything is written: SQLite
    would take an empty file for a new database and the memory would open empty."""
    if not path.is_file():
        return
    size = path.stat().st_size
    wal = path.with_name(path.name + "-wal")
    if size == 0 and wal.is_file() and wal.stat().st_size > 0:
        return  # a new database whose first pages are still in its write-ahead log
    restore = (
        "Restore the file from a backup, or move it away to start an empty memory; "
        "LightMem leaves it as it is."
    )
    if size == 0:
        raise StoreError(f"the record store {path} is an empty file (0 bytes). {restore}")
    with path.open("rb") as f:
        header = f.read(100)
    if not header.startswith(_SQLITE_HEADER):
        raise StoreError(f"the record store {path} is not a SQLite database. {restore}")
    if len(header) < 100:
        raise StoreError(f"the record store {path} is truncated ({size} bytes). {restore}")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    counter_valid = header[24:28] == header[92:96]
    if counter_valid and pages and size < page_size * pages:
        raise StoreError(
            f"the record store {path} is truncated: {size} bytes where its header counts "
            f"{pages} pages of {page_size} bytes. {restore}"
        )


class _StoreConnection(sqlite3.Connection):
    """A connection whose storage failures (a corrupt or unreadable file, a full disk) raise
    :class:`StoreError` naming the file; constraint errors pass unchanged."""

    path: Path

    def _fail(self, exc: sqlite3.DatabaseError) -> StoreError:
        error = StoreError(
            f"the record store {getattr(self, 'path', '?')} failed: {exc}. Check the disk and "
            f"the file; restore it from a backup if it is damaged."
        )
        error.__cause__ = exc
        return error

    def execute(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        try:
            return super().execute(*args, **kwargs)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:
            raise self._fail(exc) from exc

    def executemany(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        try:
            return super().executemany(*args, **kwargs)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:
            raise self._fail(exc) from exc

    def executescript(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        try:
            return super().executescript(*args, **kwargs)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:
            raise self._fail(exc) from exc


class SQLiteRecordStore:
    """SQLite record store (implements :class:`lightmem_hookspecs.RecordStore`, and the
    optional :class:`~lightmem_hookspecs.EntryFacets`, :class:`~lightmem_hookspecs.EntryRestore`
    and :class:`~lightmem_hookspecs.ScopeErase`). One instance per LightMemory, whose directory
    one process owns; safe to use from several threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        #: ``seq`` of entries a facets read saw (it changes only when an erase removes them).
        self._seqs: dict[str, int] = {}
        check_store_file(self.path)
        try:
            self._db = sqlite3.connect(
                str(self.path),
                check_same_thread=False,
                isolation_level=None,
                timeout=30,
                factory=_StoreConnection,
            )
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the record store at {self.path}: {exc}. Check that the folder "
                f"exists and is writable, or set history_db_path to another file."
            ) from exc
        self._db.path = self.path
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    # -- plumbing --------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._lock:
            self._db.executescript(_META)
            version = self.get_meta("schema_version")
            tables = {
                r["name"]
                for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if version is None and "messages" in tables:
                version = "1"
            if version is not None and int(version) > SCHEMA_VERSION:
                raise StoreError(
                    f"the record store {self.path} has schema version {version}, newer than "
                    f"this LightMem understands ({SCHEMA_VERSION}). Upgrade lightmem-core."
                )
            if version is not None and int(version) < 2:
                self._migrate_1_to_2()
            if version is not None and int(version) < 3:
                self._migrate_2_to_3()
            self._db.executescript(_SCHEMA)
            if version is None or int(version) < SCHEMA_VERSION:
                self.set_meta("schema_version", str(SCHEMA_VERSION))
            # One process owns the directory: a batch left running was claimed by a process
            # that died mid-extraction. It is pending again.
            with self.transaction() as db:
                db.execute(
                    "UPDATE batches SET state=? WHERE state=?",
                    (BatchState.PENDING.value, BatchState.RUNNING.value),
                )

    def _migrate_1_to_2(self) -> None:
        """Message ids become unique per scope; "" scope values become NULL; batches get a
        retry time. One transaction: a crash leaves version 1 intact."""
        db = self._db
        db.create_function(
            "lightmem_scope_key", 3, lambda u, a, r: scope_key(Scope(u, a, r)), deterministic=True
        )
        db.execute("BEGIN IMMEDIATE")
        try:
            for table in ("messages", "entries"):
                for field in SCOPE_FIELDS:
                    db.execute(f"UPDATE {table} SET {field} = NULL WHERE {field} = ''")
            db.execute(_MESSAGES.replace("{name}", "messages_v2"))
            db.execute(
                f"INSERT INTO messages_v2 ({_MESSAGE_COLUMNS}, scope_key) SELECT "
                f"{_MESSAGE_COLUMNS}, lightmem_scope_key(user_id, agent_id, run_id) FROM messages"
            )
            db.execute("DROP TABLE messages")
            db.execute("ALTER TABLE messages_v2 RENAME TO messages")
            columns = {r["name"] for r in db.execute("PRAGMA table_info(batches)")}
            if "next_attempt_at" not in columns:
                db.execute("ALTER TABLE batches ADD COLUMN next_attempt_at TEXT")
            self.set_meta("schema_version", "2", db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def _migrate_2_to_3(self) -> None:
        """Batches get their scope (that of their messages) and their state as data: a batch
        held back by a per-call budget (retry time in the year 9999) becomes ``held``, one
        waiting for the token budget (its error began with the waiting text) becomes
        ``waiting_for_budget``. One transaction: a crash leaves version 2 intact."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            columns = {r["name"] for r in db.execute("PRAGMA table_info(batches)")}
            for column in ("scope_key", "user_id", "agent_id", "run_id"):
                if column not in columns:
                    db.execute(f"ALTER TABLE batches ADD COLUMN {column} TEXT")
            db.execute(
                "UPDATE batches SET (scope_key, user_id, agent_id, run_id) = ("
                "SELECT m.scope_key, m.user_id, m.agent_id, m.run_id FROM messages m "
                "WHERE m.batch_id = batches.id ORDER BY m.seq LIMIT 1)"
            )
            db.execute(
                "UPDATE batches SET state=?, next_attempt_at=NULL "
                "WHERE state != 'done' AND next_attempt_at = ?",
                (BatchState.HELD.value, _V2_HELD_AT),
            )
            db.execute(
                "UPDATE batches SET state=? "
                "WHERE state = 'failed' AND substr(last_error, 1, ?) = ?",
                (BatchState.WAITING_FOR_BUDGET.value, len(_V2_WAITING), _V2_WAITING),
            )
            self.set_meta("schema_version", "3", db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: everything inside commits together or not at all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str, db: sqlite3.Connection | None = None) -> None:
        sql = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=?"
        if db is not None:
            db.execute(sql, (key, value, value))
        else:
            with self.transaction() as tx:
                tx.execute(sql, (key, value, value))

    def next_topic_ids(self, db: sqlite3.Connection, count: int) -> list[int]:
        row = db.execute("SELECT value FROM meta WHERE key='next_topic_id'").fetchone()
        start = int(row["value"]) if row else 0
        self.set_meta("next_topic_id", str(start + count), db)
        return list(range(start, start + count))

    # -- message journal -------------------------------------------------------------------

    def add_messages(self, messages: Sequence[Message]) -> list[Message]:
        """Journal messages; an id already journaled in the message's scope is skipped (the
        same id in another scope is another message). Returns the new ones."""
        added: list[Message] = []
        stamp = now()
        with self.transaction() as db:
            for m in messages:
                cur = db.execute(
                    "INSERT OR IGNORE INTO messages(id, scope_key, role, content, "
                    "original_content, time_stamp, speaker_id, speaker_name, user_id, agent_id, "
                    "run_id, metadata, state, created_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,'sensory',?)",
                    (
                        m.id,
                        scope_key(m.scope),
                        m.role,
                        m.content,
                        m.original_content,
                        _ts_out(m.time_stamp),
                        m.speaker_id,
                        m.speaker_name,
                        m.scope.user_id,
                        m.scope.agent_id,
                        m.scope.run_id,
                        json.dumps(dict(m.metadata), default=str),
                        stamp,
                    ),
                )
                if cur.rowcount:
                    added.append(m)
        return added

    def journal(self, state: str | None = None, scope: Scope | None = None) -> list[JournalRow]:
        """Journaled messages in order, optionally of one state and of exactly one scope."""
        sql = "SELECT * FROM messages"
        clauses: list[str] = []
        params: list[Any] = []
        if scope is not None:
            clauses.append("scope_key = ?")
            params.append(scope_key(scope))
        if state is not None:
            clauses.append("state = ?")
            params.append(state)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY seq"
        return [_journal_row(r) for r in self._query(sql, params)]

    def messages_by_id(
        self, ids: Iterable[str], *, scope: Scope | None = None
    ) -> dict[str, Message]:
        """The journaled messages with these ids, in exactly ``scope`` (``None``: any scope,
        for tools that know the ids are unique)."""
        ids = list(ids)
        where = "id IN ({marks})" if scope is None else "scope_key = ? AND id IN ({marks})"
        head = [] if scope is None else [scope_key(scope)]
        out: dict[str, Message] = {}
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            sql = "SELECT * FROM messages WHERE " + where.replace("{marks}", marks)
            for r in self._query(sql, [*head, *chunk]):
                out[r["id"]] = _journal_row(r).message
        return out

    def allocate_topic_ids(self, count: int) -> list[int]:
        """Reserve ``count`` consecutive topic ids."""
        with self.transaction() as db:
            return self.next_topic_ids(db, count)

    def assign_segments(
        self,
        assignments: dict[str, int],
        *,
        scope: Scope,
        contents: dict[str, str] | None = None,
        dropped: Sequence[str] = (),
    ) -> None:
        """In one transaction: move sensory messages of ``scope`` to the short-term buffer
        with their topic id, store edited contents, and mark removed messages ``dropped``."""
        key = scope_key(scope)
        with self.transaction() as db:
            if contents:
                db.executemany(
                    "UPDATE messages SET content = ? WHERE id = ? AND scope_key = ?",
                    [(content, mid, key) for mid, content in contents.items()],
                )
            db.executemany(
                "UPDATE messages SET state='short_term', topic_id=? "
                "WHERE id=? AND scope_key=? AND state='sensory'",
                [(topic, mid, key) for mid, topic in assignments.items()],
            )
            db.executemany(
                "UPDATE messages SET state='dropped' "
                "WHERE id=? AND scope_key=? AND state='sensory'",
                [(mid, key) for mid in dropped],
            )

    def create_batch(self, message_ids: Sequence[str], *, scope: Scope) -> str:
        """Move short-term messages of ``scope`` into a new pending extraction batch."""
        batch_id = new_id()
        stamp = now()
        key = scope_key(scope)
        with self.transaction() as db:
            db.execute(
                "INSERT INTO batches(id, state, created_at, updated_at, scope_key, user_id, "
                "agent_id, run_id) VALUES (?, 'pending', ?, ?, ?, ?, ?, ?)",
                (batch_id, stamp, stamp, key, scope.user_id, scope.agent_id, scope.run_id),
            )
            db.executemany(
                "UPDATE messages SET state='batched', batch_id=? "
                "WHERE id=? AND scope_key=? AND state='short_term'",
                [(batch_id, mid, key) for mid in message_ids],
            )
        return batch_id

    def merge_batches(self, batch_ids: Sequence[str]) -> str:
        """Move the messages of these unfinished batches into the last one, atomically; the
        others are removed. Returns the last id."""
        *others, into = batch_ids
        if not others:
            return into
        with self.transaction() as db:
            marks = ",".join("?" * len(others))
            states = db.execute(
                f"SELECT state FROM batches WHERE id IN ({marks}, ?)", (*others, into)
            ).fetchall()
            claimable = {s.value for s in CLAIMABLE_STATES}
            if len(states) != len(batch_ids) or any(r["state"] not in claimable for r in states):
                raise ValueError(
                    f"merge_batches: not all of {list(batch_ids)} are unfinished and unclaimed"
                )
            db.execute(
                f"UPDATE messages SET batch_id=? WHERE batch_id IN ({marks})", (into, *others)
            )
            db.execute(f"DELETE FROM batches WHERE id IN ({marks})", others)
            db.execute("UPDATE batches SET updated_at=? WHERE id=?", (now(), into))
        return into

    def batch(self, batch_id: str) -> Batch | None:
        rows = self._query("SELECT * FROM batches WHERE id = ?", (batch_id,))
        return _batch(rows[0]) if rows else None

    def batches(
        self,
        states: Iterable[BatchState] = UNFINISHED_STATES,
        *,
        scope: Scope | None = None,
        due_by: dt.datetime | None = None,
    ) -> list[Batch]:
        """The batches in one of ``states``, oldest first, in exactly ``scope`` (``None``:
        every scope); with ``due_by`` only those whose retry time is unset or not later.
        One query on the (state, scope, age) index."""
        wanted = sorted(BatchState(s).value for s in states)
        if not wanted:
            return []
        sql = f"SELECT * FROM batches WHERE state IN ({','.join('?' * len(wanted))})"
        params: list[Any] = list(wanted)
        if scope is not None:
            sql += " AND scope_key = ?"
            params.append(scope_key(scope))
        if due_by is not None:
            sql += " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
            params.append(_at(due_by))
        return [_batch(r) for r in self._query(sql + " ORDER BY created_at, rowid", params)]

    def pending_batches(self) -> list[str]:
        """The ids of every unfinished batch, oldest first."""
        return [b.id for b in self.batches()]

    def next_retry_at(self) -> dt.datetime | None:
        """The earliest retry time among batches waiting for one (``None``: nothing waits)."""
        states = sorted(s.value for s in SCHEDULED_STATES)
        rows = self._query(
            "SELECT MIN(next_attempt_at) AS t FROM batches "
            f"WHERE state IN ({','.join('?' * len(states))})",
            states,
        )
        return _ts_in(rows[0]["t"]) if rows else None

    def batch_messages(self, batch_id: str) -> list[JournalRow]:
        rows = self._query("SELECT * FROM messages WHERE batch_id = ? ORDER BY seq", (batch_id,))
        return [_journal_row(r) for r in rows]

    def claim_batch(self, batch_id: str) -> Batch | None:
        """The batch, now ``running``; ``None`` when it is done, gone or claimed already (the
        owner lock of the memory directory makes this process the only claimant)."""
        claimable = sorted(s.value for s in CLAIMABLE_STATES)
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE batches SET state='running', updated_at=? "
                f"WHERE id=? AND state IN ({','.join('?' * len(claimable))})",
                (now(), batch_id, *claimable),
            )
            if not cur.rowcount:
                return None
            row = db.execute("SELECT * FROM batches WHERE id=?", (batch_id,)).fetchone()
        return _batch(row)

    def release_batch(self, batch_id: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE batches SET state='pending', updated_at=? WHERE id=? AND state='running'",
                (now(), batch_id),
            )

    def set_batch_state(
        self,
        batch_id: str,
        state: BatchState,
        *,
        error: str = "",
        retry_at: dt.datetime | None = None,
        attempted: bool = False,
    ) -> None:
        """Record that the batch failed, is held or waits for the budget, why, and when it
        is retried (``done`` is :meth:`complete_batch`'s)."""
        state = BatchState(state)
        if state is BatchState.DONE:
            raise ValueError("set_batch_state: a batch is done only through complete_batch")
        with self.transaction() as db:
            db.execute(
                "UPDATE batches SET state=?, attempts=attempts+?, last_error=?, "
                "next_attempt_at=?, updated_at=? WHERE id=? AND state != 'done'",
                (state.value, int(attempted), error[:2000], _at(retry_at), now(), batch_id),
            )

    def complete_batch(
        self,
        batch_id: str,
        entries: Sequence[MemoryEntry],
        *,
        unextracted: Sequence[str] = (),
        rest_state: BatchState = BatchState.FAILED,
        error: str = "",
        retry_at: dt.datetime | None = None,
    ) -> list[MemoryEntry]:
        """Store a batch's entries and mark the batch done, atomically.

        ``unextracted`` names messages of the batch whose facts could not be extracted (e.g.
        an answer cut at the token limit, or past a call's token budget): they move to a new
        batch in ``rest_state`` (``error``, retried at ``retry_at``) and stay visible as
        pending; only the others are marked extracted.
        Entry ids derive from the batch, so a batch completed twice (after a crash) stores
        nothing the second time. Returns the entries actually inserted.
        """
        stamp = now()
        stored: list[MemoryEntry] = []
        with self.transaction() as db:
            batch = db.execute("SELECT * FROM batches WHERE id=?", (batch_id,)).fetchone()
            if batch is None or batch["state"] == "done":
                return []
            for e in entries:
                e = attrs.evolve(e, created_at=_ts_in(stamp), updated_at=_ts_in(stamp))
                if self._insert_entry(db, e, batch_id, stamp, action_reason="extracted"):
                    stored.append(e)
            if unextracted:
                rest = new_id()
                db.execute(
                    "INSERT INTO batches(id, state, attempts, last_error, next_attempt_at, "
                    "created_at, updated_at, scope_key, user_id, agent_id, run_id) "
                    "VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        rest,
                        BatchState(rest_state).value,
                        (error or "not extracted")[:2000],
                        _at(retry_at),
                        stamp,
                        stamp,
                        batch["scope_key"],
                        batch["user_id"],
                        batch["agent_id"],
                        batch["run_id"],
                    ),
                )
                db.executemany(
                    "UPDATE messages SET batch_id=? WHERE batch_id=? AND id=?",
                    [(rest, batch_id, mid) for mid in unextracted],
                )
            db.execute(
                "UPDATE batches SET state='done', attempts=attempts+1, updated_at=? WHERE id=?",
                (stamp, batch_id),
            )
            db.execute("UPDATE messages SET state='extracted' WHERE batch_id=?", (batch_id,))
        return stored

    def _insert_entry(
        self,
        db: sqlite3.Connection,
        e: MemoryEntry,
        batch_id: str | None,
        stamp: str,
        action_reason: str,
    ) -> bool:
        if not self._insert_entry_row(db, e, batch_id=batch_id, created=stamp, updated=stamp):
            return False
        db.execute(
            "INSERT INTO history(entry_id, action, old_memory, new_memory, reason, at) "
            "VALUES (?, 'add', NULL, ?, ?, ?)",
            (e.id, e.memory, action_reason, stamp),
        )
        return True

    def _insert_entry_row(
        self,
        db: sqlite3.Connection,
        e: MemoryEntry,
        *,
        batch_id: str | None,
        created: str,
        updated: str,
    ) -> bool:
        """Insert ``e`` with its provenance and a new revision; ``False`` when its id is known."""
        cur = db.execute(
            "INSERT OR IGNORE INTO entries(id, memory, original_memory, time_stamp, speaker_id, "
            "speaker_name, topic_id, user_id, agent_id, run_id, category, keywords, entities, "
            "topic_summary, importance, status, metadata, batch_id, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                e.id,
                e.memory,
                e.original_memory,
                _ts_out(e.time_stamp),
                e.speaker_id,
                e.speaker_name,
                e.topic_id,
                e.scope.user_id,
                e.scope.agent_id,
                e.scope.run_id,
                e.category,
                json.dumps(list(e.keywords)),
                json.dumps(list(e.entities)),
                e.topic_summary,
                e.importance,
                e.status,
                json.dumps(dict(e.metadata), default=str),
                batch_id,
                created,
                updated,
            ),
        )
        if not cur.rowcount:
            return False
        self._bump_revision(db, e.id)
        db.executemany(
            "INSERT OR IGNORE INTO entry_sources(entry_id, message_id, position) VALUES (?,?,?)",
            [(e.id, mid, i) for i, mid in enumerate(e.source_message_ids)],
        )
        return True

    def restore_entries(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        """Insert entries as an export file holds them (status, time stamps, provenance; no
        batch, no history row: the history comes with them). Known ids are skipped. Returns
        the entries inserted (:meth:`lightmem_hookspecs.EntryRestore.restore_entries`)."""
        stamp = now()
        with self.transaction() as db:
            return [
                e
                for e in entries
                if self._insert_entry_row(
                    db,
                    e,
                    batch_id=None,
                    created=_ts_out(e.created_at) or stamp,
                    updated=_ts_out(e.updated_at) or stamp,
                )
            ]

    def restore_history(self, rows: Sequence[dict[str, Any]]) -> int:
        """Append history rows as an export file holds them (their own time stamps;
        :meth:`lightmem_hookspecs.EntryRestore.restore_history`)."""
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO history(entry_id, action, old_memory, new_memory, reason, "
                "replaced_by, at) VALUES (?,?,?,?,?,?,?)",
                [
                    (
                        r["entry_id"],
                        r["action"],
                        r.get("old_memory"),
                        r.get("new_memory"),
                        r.get("reason") or "",
                        r.get("replaced_by"),
                        r.get("at") or now(),
                    )
                    for r in rows
                ],
            )
        return len(rows)

    # -- entries ---------------------------------------------------------------------------

    def entries(
        self,
        ids: Iterable[str] | None = None,
        *,
        status: str | None = "active",
        scope: Scope | None = None,
        unindexed_only: bool = False,
        changed_since: int | None = None,
    ) -> list[MemoryEntry]:
        """Entries in insertion order. ``scope`` matches exactly (``None``: every scope)."""
        clauses: list[str] = []
        params: list[Any] = []
        # With ids, only the unique index on id may be used: "+" keeps SQLite from scanning
        # every active entry through the status index instead (100 ms at 100 k entries).
        plus = "+" if ids is not None else ""
        if status is not None:
            clauses.append(f"{plus}status = ?")
            params.append(status)
        if scope is not None:  # exact: an unset field matches only entries with it unset
            for key, value in scope.as_dict().items():
                clauses.append(f"{key} IS ?")
                params.append(value or None)
        if unindexed_only:
            clauses.append(f"{plus}indexed = 0")
        if changed_since is not None:
            clauses.append(f"{plus}revision > ?")
            params.append(changed_since)
        base = "SELECT * FROM entries"
        if ids is not None:
            id_list = list(ids)
            rows: list[sqlite3.Row] = []
            for chunk in _chunks(id_list, 500):
                where = [*clauses, f"id IN ({','.join('?' * len(chunk))})"]
                rows += self._query(f"{base} WHERE {' AND '.join(where)}", [*params, *chunk])
        else:
            sql = base + (f" WHERE {' AND '.join(clauses)}" if clauses else "") + " ORDER BY seq"
            rows = self._query(sql, params)
        sources = self._sources([r["id"] for r in rows])
        return [_entry(r, sources.get(r["id"], ())) for r in rows]

    def entry_facets(self, ids: Sequence[str]) -> dict[str, tuple[int | None, str | None]]:
        """``{id: (topic_id, speaker)}`` of the active entries among ``ids`` (the speaker's
        name, else its id): what a search reads of a whole pool, without loading entries (the
        ``entries_facets`` index covers the read). The same read notes each entry's ``seq``
        (the rowid, in every index) for :meth:`entry_positions`."""
        out: dict[str, tuple[int | None, str | None]] = {}
        with self._lock:
            if len(self._seqs) > _SEQ_MEMO:
                self._seqs.clear()
            for entry_id, topic_id, name, speaker_id, seq in self._tuples_by_id(
                "SELECT id, topic_id, speaker_name, speaker_id, seq FROM entries "
                "WHERE status = 'active' AND id IN ({ids})",
                ids,
            ):
                out[entry_id] = (topic_id, name or speaker_id)
                self._seqs[entry_id] = seq
        return out

    def _tuples_by_id(self, sql: str, ids: Sequence[str]) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` (its ``{ids}`` stands for the ``IN`` list) for ``ids``, 500 at a
        time, as plain tuples: the reads a search makes of its whole pool."""
        rows: list[tuple[Any, ...]] = []
        with self._lock:
            cursor = self._db.cursor()
            cursor.row_factory = None
            for chunk in _chunks(ids if isinstance(ids, list) else list(ids), 500):
                cursor.execute(sql.format(ids=",".join("?" * len(chunk))), chunk)
                rows += cursor.fetchall()
        return rows

    def get_entry(self, entry_id: str) -> MemoryEntry | None:
        found = self.entries([entry_id], status=None)
        return found[0] if found else None

    def _sources(self, entry_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {}
        for chunk in _chunks(list(entry_ids), 500):
            marks = ",".join("?" * len(chunk))
            for r in self._query(
                f"SELECT entry_id, message_id FROM entry_sources WHERE entry_id IN ({marks}) "
                "ORDER BY entry_id, position",
                chunk,
            ):
                out.setdefault(r["entry_id"], []).append(r["message_id"])
        return {k: tuple(v) for k, v in out.items()}

    def count_entries(self, status: str | None = "active") -> int:
        if status is None:
            return self._query("SELECT COUNT(*) AS n FROM entries")[0]["n"]
        return self._query("SELECT COUNT(*) AS n FROM entries WHERE status=?", (status,))[0]["n"]

    def entry_positions(self, ids: Sequence[str]) -> dict[str, int]:
        """``{id: seq}`` of the entries among ``ids``: their places in the order they were
        stored (:class:`lightmem_hookspecs.EntryPositions`). An entry's ``seq`` never changes
        while it exists, so those a facets read just noted are not read again; the others are
        read through the unique index on ``id`` (``seq`` is the rowid; a condition on
        ``status`` would make SQLite walk the ``entries_status`` index instead)."""
        out: dict[str, int] = {}
        with self._lock:
            missing = []
            for entry_id in ids:
                seq = self._seqs.get(entry_id)
                if seq is None:
                    missing.append(entry_id)
                else:
                    out[entry_id] = seq
            out.update(
                self._tuples_by_id("SELECT id, seq FROM entries WHERE id IN ({ids})", missing)
            )
        return out

    def mark_indexed(self, ids: Sequence[str], indexed: bool = True) -> None:
        with self.transaction() as db:
            db.executemany(
                "UPDATE entries SET indexed=? WHERE id=?", [(int(indexed), i) for i in ids]
            )

    def max_revision(self) -> int:
        return self._query("SELECT COALESCE(MAX(revision), 0) AS r FROM entries")[0]["r"]

    def _bump_revision(self, db: sqlite3.Connection, entry_id: str) -> None:
        row = db.execute("SELECT COALESCE(MAX(revision), 0) AS r FROM entries").fetchone()
        db.execute("UPDATE entries SET revision=? WHERE id=?", (row["r"] + 1, entry_id))

    def update_entry_text(self, entry_id: str, new_memory: str, reason: str) -> MemoryEntry:
        """Change an entry's text; it must be re-indexed (``indexed`` is reset)."""
        stamp = now()
        with self.transaction() as db:
            row = db.execute(
                "SELECT memory, status FROM entries WHERE id=?", (entry_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"entry {entry_id!r} does not exist")
            db.execute(
                "UPDATE entries SET memory=?, indexed=0, updated_at=? WHERE id=?",
                (new_memory, stamp, entry_id),
            )
            self._bump_revision(db, entry_id)
            db.execute(
                "INSERT INTO history(entry_id, action, old_memory, new_memory, reason, at) "
                "VALUES (?, 'update', ?, ?, ?, ?)",
                (entry_id, row["memory"], new_memory, reason, stamp),
            )
        entry = self.get_entry(entry_id)
        assert entry is not None
        return entry

    def retire_entry(
        self, entry_id: str, *, action: str, reason: str, replaced_by: str | None = None
    ) -> None:
        """Mark an entry deleted or superseded. It stays in the store and its history."""
        status = {"delete": "deleted", "supersede": "superseded"}[action]
        stamp = now()
        with self.transaction() as db:
            row = db.execute("SELECT memory FROM entries WHERE id=?", (entry_id,)).fetchone()
            if row is None:
                raise StoreError(f"entry {entry_id!r} does not exist")
            db.execute(
                "UPDATE entries SET status=?, replaced_by=?, updated_at=? WHERE id=?",
                (status, replaced_by, stamp, entry_id),
            )
            self._bump_revision(db, entry_id)
            db.execute(
                "INSERT INTO history(entry_id, action, old_memory, new_memory, reason, "
                "replaced_by, at) VALUES (?, ?, ?, NULL, ?, ?, ?)",
                (entry_id, action, row["memory"], reason, replaced_by, stamp),
            )

    def history(self, entry_id: str | None = None) -> list[dict[str, Any]]:
        if entry_id is None:
            rows = self._query("SELECT * FROM history ORDER BY seq")
        else:
            rows = self._query("SELECT * FROM history WHERE entry_id=? ORDER BY seq", (entry_id,))
        return [dict(r) for r in rows]

    # -- usage -----------------------------------------------------------------------------

    def add_usage(self, operation: str, usage: Usage) -> None:
        if usage == Usage():
            return
        with self.transaction() as db:
            db.execute(
                "INSERT INTO usage(operation, llm_calls, prompt_tokens, completion_tokens, "
                "embedder_calls, embedded_texts) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(operation) DO UPDATE SET llm_calls=llm_calls+excluded.llm_calls, "
                "prompt_tokens=prompt_tokens+excluded.prompt_tokens, "
                "completion_tokens=completion_tokens+excluded.completion_tokens, "
                "embedder_calls=embedder_calls+excluded.embedder_calls, "
                "embedded_texts=embedded_texts+excluded.embedded_texts",
                (
                    operation,
                    usage.llm_calls,
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    usage.embedder_calls,
                    usage.embedded_texts,
                ),
            )

    def usage(self) -> dict[str, Usage]:
        out = {}
        for r in self._query("SELECT * FROM usage ORDER BY operation"):
            out[r["operation"]] = Usage(
                llm_calls=r["llm_calls"],
                prompt_tokens=r["prompt_tokens"],
                completion_tokens=r["completion_tokens"],
                embedder_calls=r["embedder_calls"],
                embedded_texts=r["embedded_texts"],
            )
        return out

    # -- offline update queue --------------------------------------------------------------

    def save_update_queue(self, queue: dict[str, list[tuple[str, float]]]) -> None:
        stamp = now()
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO update_queue(entry_id, candidates, built_at) VALUES (?,?,?) "
                "ON CONFLICT(entry_id) DO UPDATE SET candidates=excluded.candidates, "
                "built_at=excluded.built_at",
                [(eid, json.dumps(c), stamp) for eid, c in queue.items()],
            )

    def update_queue(self) -> dict[str, list[tuple[str, float]]]:
        rows = self._query("SELECT entry_id, candidates FROM update_queue ORDER BY entry_id")
        return {r["entry_id"]: [tuple(c) for c in json.loads(r["candidates"])] for r in rows}

    def clear_update_queue(self) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM update_queue")

    def stats(self) -> dict[str, Any]:
        counts = {
            r["status"]: r["n"]
            for r in self._query("SELECT status, COUNT(*) AS n FROM entries GROUP BY status")
        }
        states = {
            r["state"]: r["n"]
            for r in self._query("SELECT state, COUNT(*) AS n FROM messages GROUP BY state")
        }
        batches = {
            r["state"]: r["n"]
            for r in self._query("SELECT state, COUNT(*) AS n FROM batches GROUP BY state")
        }
        return {"entries": counts, "messages": states, "batches": batches}

    def erase_scope(
        self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> dict[str, Any]:
        """Remove every message, batch, entry, source link, history row and queued update of
        the scopes matching the given fields (a field not given matches any value), then
        rewrite the file so none of their bytes remain (``secure_delete``, ``VACUUM``, the
        write-ahead log truncated). Returns the ids of the removed entries and the counts
        (:meth:`lightmem_hookspecs.ScopeErase.erase_scope`)."""
        given = [
            (f, v)
            for f, v in (("user_id", user_id), ("agent_id", agent_id), ("run_id", run_id))
            if v is not None
        ]
        if not given:
            raise InputError(
                "erase_scope: name a user_id, agent_id or run_id (none would erase every scope)"
            )
        where = " AND ".join(f"{f} = ?" for f, _ in given)
        params = [v for _, v in given]
        with self._lock:
            self._db.execute("PRAGMA secure_delete=ON")
            try:
                with self.transaction() as db:
                    ids = [
                        r[0] for r in db.execute(f"SELECT id FROM entries WHERE {where}", params)
                    ]
                    counts = {"entries": len(ids), "history": 0, "messages": 0, "batches": 0}
                    for chunk in _chunks(ids, 500):
                        marks = ",".join("?" * len(chunk))
                        db.execute(f"DELETE FROM entry_sources WHERE entry_id IN ({marks})", chunk)
                        counts["history"] += db.execute(
                            f"DELETE FROM history WHERE entry_id IN ({marks})", chunk
                        ).rowcount
                        db.execute(f"DELETE FROM update_queue WHERE entry_id IN ({marks})", chunk)
                    db.execute(f"DELETE FROM entries WHERE {where}", params)
                    self._seqs.clear()  # an id erased may come back with another seq
                    counts["messages"] = db.execute(
                        f"DELETE FROM messages WHERE {where}", params
                    ).rowcount
                    counts["batches"] = db.execute(
                        f"DELETE FROM batches WHERE {where}", params
                    ).rowcount
                self._db.execute("VACUUM")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._db.execute("PRAGMA secure_delete=OFF")
        return {"entry_ids": ids, **counts}


#: How many entries' ``seq`` a store keeps noted before it starts afresh.
_SEQ_MEMO = 100_000


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _journal_row(r: sqlite3.Row) -> JournalRow:
    message = Message(
        id=r["id"],
        role=r["role"],
        content=r["content"],
        original_content=r["original_content"],
        time_stamp=_ts_in(r["time_stamp"]),
        speaker_id=r["speaker_id"],
        speaker_name=r["speaker_name"],
        scope=Scope(r["user_id"], r["agent_id"], r["run_id"]),
        metadata=json.loads(r["metadata"]),
    )
    return JournalRow(r["seq"], message, r["state"], r["topic_id"], r["batch_id"])


def _entry(r: sqlite3.Row, sources: tuple[str, ...]) -> MemoryEntry:
    return MemoryEntry(
        id=r["id"],
        memory=r["memory"],
        source_message_ids=sources,
        time_stamp=_ts_in(r["time_stamp"]),
        speaker_id=r["speaker_id"],
        speaker_name=r["speaker_name"],
        topic_id=r["topic_id"],
        scope=Scope(r["user_id"], r["agent_id"], r["run_id"]),
        category=r["category"],
        keywords=tuple(json.loads(r["keywords"])),
        entities=tuple(json.loads(r["entities"])),
        topic_summary=r["topic_summary"],
        original_memory=r["original_memory"],
        importance=r["importance"],
        status=r["status"],
        created_at=_ts_in(r["created_at"]),
        updated_at=_ts_in(r["updated_at"]),
        metadata={
            **json.loads(r["metadata"]),
            **({"replaced_by": r["replaced_by"]} if r["replaced_by"] else {}),
        },
    )


def _batch(r: sqlite3.Row) -> Batch:
    return Batch(
        id=r["id"],
        state=BatchState(r["state"]),
        scope=Scope(r["user_id"], r["agent_id"], r["run_id"]),
        attempts=r["attempts"],
        error=r["last_error"] or "",
        retry_at=_ts_in(r["next_attempt_at"]),
        created_at=_ts_in(r["created_at"]),
        updated_at=_ts_in(r["updated_at"]),
    )
