"""``record_store: postgres``: the whole journal / batch / entry / history / usage model of a
memory in one Postgres schema, shared by any number of processes on any number of machines.

Claims: a worker claims a batch with a row lock that skips locked rows (``FOR UPDATE SKIP
LOCKED``), so of several workers claiming at once exactly one gets it. The claim records the
claimant's identity: the server process (``pid``, ``backend_start``) of a connection the store
holds open for its whole life. When the claimant dies (``kill -9``, a lost machine), the
server ends that connection, the identity disappears from ``pg_stat_activity``, and its running
batches are claimable again; no lease to renew and no lock on a directory.

Schema versions: :data:`MIGRATIONS`, ordered SQL, applied forward in one transaction under an
advisory lock (openers wait for each other); a schema newer than the code is refused.

Durability: the journal's messages, a batch's completion (its entries), an entry's edit or
retirement and an erase commit after their WAL is flushed. The steps between them commit
without waiting for the flush (:func:`~lightmem_postgres.connection.without_flush_wait`),
because losing them in a server crash loses no data: a claim (lost: the batch is claimable
again, as after its claimant's death), moving messages to short-term or into a batch (lost:
they are segmented or batched again), marking entries indexed (lost: they are indexed again
when a memory opens), usage rows (counters, not data). Postgres flushes the WAL in commit
order, so the next flushed commit of any writer makes every earlier one durable: a crash
loses at most the last of these steps, as if the worker had stopped there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import psycopg
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
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from . import connection as pg
from .errors import PostgresError
from .options import ConnectionOptions

#: The schema's component key in ``lightmem_meta``.
SCHEMA_KEY = "records:schema_version"

_V1 = """
CREATE TABLE {s}.messages (
    seq bigserial PRIMARY KEY,
    id text NOT NULL,
    scope_key text NOT NULL,
    role text NOT NULL,
    content text NOT NULL,
    original_content text NOT NULL,
    time_stamp text,
    speaker_id text,
    speaker_name text,
    user_id text, agent_id text, run_id text,
    metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    state text NOT NULL DEFAULT 'sensory',
    topic_id bigint,
    batch_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (scope_key, id)
);
CREATE INDEX messages_scope ON {s}.messages (scope_key, state, seq);
CREATE INDEX messages_state ON {s}.messages (state, seq);
CREATE INDEX messages_batch ON {s}.messages (batch_id);
CREATE TABLE {s}.batches (
    id text PRIMARY KEY,
    seq bigserial,
    state text NOT NULL,
    scope_key text NOT NULL,
    user_id text, agent_id text, run_id text,
    attempts integer NOT NULL DEFAULT 0,
    last_error text NOT NULL DEFAULT '',
    retry_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batches_state ON {s}.batches (state, scope_key, seq);
CREATE TABLE {s}.entries (
    seq bigserial PRIMARY KEY,
    id text NOT NULL UNIQUE,
    memory text NOT NULL,
    original_memory text,
    time_stamp text,
    speaker_id text,
    speaker_name text,
    topic_id bigint,
    scope_key text NOT NULL,
    user_id text, agent_id text, run_id text,
    category text,
    keywords jsonb NOT NULL DEFAULT '[]'::jsonb,
    entities jsonb NOT NULL DEFAULT '[]'::jsonb,
    topic_summary text,
    importance double precision,
    status text NOT NULL DEFAULT 'active',
    replaced_by text,
    metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    batch_id text,
    indexed boolean NOT NULL DEFAULT false,
    revision bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX entries_status ON {s}.entries (status, seq);
CREATE INDEX entries_scope ON {s}.entries (scope_key, status, seq);
CREATE INDEX entries_revision ON {s}.entries (revision);
CREATE INDEX entries_unindexed ON {s}.entries (seq) WHERE NOT indexed;
CREATE SEQUENCE {s}.revisions;
CREATE TABLE {s}.entry_sources (
    entry_id text NOT NULL,
    message_id text NOT NULL,
    position integer NOT NULL,
    PRIMARY KEY (entry_id, message_id)
);
CREATE TABLE {s}.history (
    seq bigserial PRIMARY KEY,
    entry_id text NOT NULL,
    action text NOT NULL,
    old_memory text,
    new_memory text,
    reason text NOT NULL DEFAULT '',
    replaced_by text,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX history_entry ON {s}.history (entry_id, seq);
CREATE TABLE {s}.usage (
    operation text PRIMARY KEY,
    llm_calls bigint NOT NULL DEFAULT 0,
    prompt_tokens bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    embedder_calls bigint NOT NULL DEFAULT 0,
    embedded_texts bigint NOT NULL DEFAULT 0
);
CREATE TABLE {s}.update_queue (
    entry_id text PRIMARY KEY,
    candidates jsonb NOT NULL,
    built_at timestamptz NOT NULL DEFAULT now()
);
"""

#: 2: a running batch records its claimant (the server process of the claiming store's
#: presence connection), so a dead claimant's batches are claimable again.
_V2 = """
ALTER TABLE {s}.batches ADD COLUMN claimed_pid integer, ADD COLUMN claimed_start timestamptz;
"""

#: 3: revisions come from a one-row clock updated last in each writing transaction (its row
#: lock is held until commit, so revisions commit in their order; a sequence's numbers could
#: commit out of order and ``entries(changed_since=...)`` miss a row).
_V3 = """
CREATE TABLE {s}.revision_clock (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    value bigint NOT NULL
);
INSERT INTO {s}.revision_clock (value)
    SELECT greatest(coalesce(max(revision), 0), (SELECT last_value FROM {s}.revisions))
    FROM {s}.entries;
DROP SEQUENCE {s}.revisions;
"""

#: Ordered forward migrations: entry ``i`` brings the schema from version ``i`` to ``i + 1``.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3)
SCHEMA_VERSION = len(MIGRATIONS)

_CLAIMABLE = [s.value for s in CLAIMABLE_STATES]
#: A running batch whose claimant's server process is gone.
_DEAD_CLAIM = (
    "state = 'running' AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a "
    "WHERE a.pid = claimed_pid AND a.backend_start = claimed_start)"
)


class EntryNotFoundError(PostgresError, KeyError):
    """No entry with that id."""


def scope_key(scope: Scope) -> str:
    """The canonical text of a scope (the core's: a JSON array of the three ids)."""
    return json.dumps([scope.user_id, scope.agent_id, scope.run_id], ensure_ascii=False)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _ts_out(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ts_in(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def migrations(schema: str) -> list[sql.Composable]:
    return [sql.SQL(step).format(s=sql.Identifier(schema)) for step in MIGRATIONS]  # type: ignore[arg-type]


#: Type names for a binary ``COPY`` where the column's name differs.
_COPY_NAMES = {"bigint": "int8", "double precision": "float8", "integer": "int4"}


def _entry_columns(
    batch_id: str | None, revision: int, stamp: dt.datetime | None
) -> list[tuple[str, str, Any]]:
    """The ``entries`` columns an insert writes: name, SQL type, and the value of an entry."""
    return [
        ("id", "text", lambda e: e.id),
        ("memory", "text", lambda e: e.memory),
        ("original_memory", "text", lambda e: e.original_memory),
        ("time_stamp", "text", lambda e: _ts_out(e.time_stamp)),
        ("speaker_id", "text", lambda e: e.speaker_id),
        ("speaker_name", "text", lambda e: e.speaker_name),
        ("topic_id", "bigint", lambda e: e.topic_id),
        ("scope_key", "text", lambda e: scope_key(e.scope)),
        ("user_id", "text", lambda e: e.scope.user_id),
        ("agent_id", "text", lambda e: e.scope.agent_id),
        ("run_id", "text", lambda e: e.scope.run_id),
        ("category", "text", lambda e: e.category),
        ("keywords", "jsonb", lambda e: _json(list(e.keywords))),
        ("entities", "jsonb", lambda e: _json(list(e.entities))),
        ("topic_summary", "text", lambda e: e.topic_summary),
        ("importance", "double precision", lambda e: e.importance),
        ("status", "text", lambda e: e.status),
        ("metadata", "jsonb", lambda e: _json(dict(e.metadata))),
        ("batch_id", "text", lambda e: batch_id),
        ("revision", "bigint", lambda e: revision),
        ("created_at", "timestamptz", lambda e: e.created_at or stamp),
        ("updated_at", "timestamptz", lambda e: e.updated_at or stamp),
    ]


class PostgresRecordStore:
    """The record store on Postgres (implements :class:`lightmem_hookspecs.RecordStore`, and
    the optional :class:`~lightmem_hookspecs.EntryFacets`,
    :class:`~lightmem_hookspecs.EntryRestore` and :class:`~lightmem_hookspecs.ScopeErase`).

    Any number of instances, in any number of processes, may use one schema at once.
    """

    #: Several processes may share it: a memory on it takes no directory lock.
    shared = True

    def __init__(self, options: ConnectionOptions, *, upto: int | None = None) -> None:
        self.options = options
        self.schema = options.schema
        info = options.conninfo()
        self._db: pg.Database | None = pg.acquire(
            info,
            min_size=options.pool_min_size,
            max_size=options.pool_max_size,
            timeout=options.connect_timeout,
        )
        self._presence: psycopg.Connection[Any] | None = None
        self._claimant: tuple[int, dt.datetime] | None = None
        self._presence_lock = threading.Lock()
        self._growth = pg.GrowthAnalyzer()
        try:
            with self.db.connection("opening the record store") as conn:
                self.version = pg.migrate(
                    conn,
                    self.schema,
                    SCHEMA_KEY,
                    migrations(self.schema),
                    what="record store",
                    upto=upto,
                )
            if upto is None:
                self._identity()
                self._reap()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        where = self._db.where if self._db else "closed"
        return f"PostgresRecordStore({where}, schema {self.schema})"

    @property
    def db(self) -> pg.Database:
        if self._db is None:
            raise RuntimeError("record store: closed")
        return self._db

    def _t(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.schema, name)

    def _q(self, text: str, **names: str) -> sql.Composed:
        return sql.SQL(text).format(**{k: self._t(v) for k, v in names.items()})

    def close(self) -> None:
        with self._presence_lock:
            presence, self._presence = self._presence, None
        if presence is not None:
            with contextlib.suppress(psycopg.Error):
                presence.close()
        db, self._db = self._db, None
        if db is not None:
            pg.release(db)

    # -- claims ------------------------------------------------------------------------------

    def _identity(self) -> tuple[int, dt.datetime]:
        """This store's claimant identity: the server process of its presence connection
        (reconnected, with a new identity, if the server dropped it)."""
        with self._presence_lock:
            if self._presence is None or self._presence.closed or self._presence.broken:
                try:
                    self._presence = psycopg.connect(self.db.info, autocommit=True)
                    row = self._presence.execute(
                        "SELECT pid, backend_start FROM pg_stat_activity "
                        "WHERE pid = pg_backend_pid()"
                    ).fetchone()
                except psycopg.Error as exc:
                    raise pg.translate(exc, self.db.info, "opening the record store") from None
                assert row is not None
                self._claimant = (int(row[0]), row[1])
            assert self._claimant is not None
            return self._claimant

    def _reap(self) -> int:
        """Running batches whose claimant is gone are pending again. Returns how many."""
        with self.db.connection("releasing dead claims") as conn:
            cur = conn.execute(
                self._q(
                    "UPDATE {b} SET state = 'pending', claimed_pid = NULL, claimed_start = NULL, "
                    f"updated_at = now() WHERE {_DEAD_CLAIM}",
                    b="batches",
                )
            )
            return cur.rowcount

    def claim_batch(self, batch_id: str) -> Batch | None:
        pid, start = self._identity()
        with (
            self.db.connection("claiming a batch") as conn,
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            pg.without_flush_wait(conn)  # a lost claim is a dead claimant's: claimable again
            # The row lock: of several claimants exactly one holds it; the others skip the row
            # (it is being claimed) instead of waiting. The row read is the latest version.
            cur.execute(
                self._q(
                    "SELECT state, claimed_pid, claimed_start FROM {b} WHERE id = %s "
                    "FOR UPDATE SKIP LOCKED",
                    b="batches",
                ),
                (batch_id,),
            )
            row = cur.fetchone()
            if row is None:
                return None
            if row["state"] not in _CLAIMABLE:
                if row["state"] != BatchState.RUNNING.value:
                    return None
                alive = cur.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND backend_start = %s",
                    (row["claimed_pid"], row["claimed_start"]),
                ).fetchone()
                if alive is not None:
                    return None  # claimed by a live worker (this one included)
            cur.execute(
                self._q(
                    "UPDATE {b} SET state = 'running', claimed_pid = %s, claimed_start = %s, "
                    "updated_at = now() WHERE id = %s RETURNING *",
                    b="batches",
                ),
                (pid, start, batch_id),
            )
            claimed = cur.fetchone()
        return None if claimed is None else _batch(claimed)

    def release_batch(self, batch_id: str) -> None:
        with self.db.connection("releasing a batch") as conn, conn.pipeline(), conn.transaction():
            pg.without_flush_wait(conn)  # lost: the claimant is gone, the batch claimable anyway
            conn.execute(
                self._q(
                    "UPDATE {b} SET state = 'pending', claimed_pid = NULL, claimed_start = NULL, "
                    "updated_at = now() WHERE id = %s AND state = 'running'",
                    b="batches",
                ),
                (batch_id,),
            )

    # -- metadata ----------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.db.connection("reading metadata") as conn:
            return pg.get_meta(conn, self.schema, key)

    def set_meta(self, key: str, value: str) -> None:
        with self.db.connection("writing metadata") as conn:
            pg.set_meta(conn, self.schema, key, value)

    # -- journal -----------------------------------------------------------------------------

    def add_messages(self, messages: Sequence[Message]) -> list[Message]:
        if not messages:
            return []
        statement = self._q(
            "INSERT INTO {m} (id, scope_key, role, content, original_content, time_stamp, "
            "speaker_id, speaker_name, user_id, agent_id, run_id, metadata) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (scope_key, id) DO NOTHING RETURNING id, scope_key",
            m="messages",
        )
        rows = [
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
                Jsonb(json.loads(json.dumps(dict(m.metadata), default=str))),
            )
            for m in messages
        ]
        new: set[tuple[str, str]] = set()
        with (
            self.db.connection("journaling messages") as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            cur.executemany(statement, rows, returning=True)
            while True:
                for r in cur.fetchall():
                    new.add((r[0], r[1]))
                if not cur.nextset():
                    break
        out, seen = [], set()
        for m in messages:
            key = (m.id, scope_key(m.scope))
            if key in new and key not in seen:
                seen.add(key)
                out.append(m)
        return out

    def journal(self, state: str | None = None, scope: Scope | None = None) -> list[JournalRow]:
        clauses, params = [], []
        if scope is not None:
            clauses.append("scope_key = %s")
            params.append(scope_key(scope))
        if state is not None:
            clauses.append("state = %s")
            params.append(state)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._rows(
            self._q("SELECT * FROM {m}" + where + " ORDER BY seq", m="messages"), params
        )
        return [_journal_row(r) for r in rows]

    def messages_by_id(
        self, ids: Iterable[str], *, scope: Scope | None = None
    ) -> dict[str, Message]:
        ids = list(ids)
        if not ids:
            return {}
        if scope is None:
            statement = self._q("SELECT * FROM {m} WHERE id = ANY(%s) ORDER BY seq", m="messages")
            params: list[Any] = [ids]
        else:
            statement = self._q(
                "SELECT * FROM {m} WHERE scope_key = %s AND id = ANY(%s) ORDER BY seq", m="messages"
            )
            params = [scope_key(scope), ids]
        return {r["id"]: _journal_row(r).message for r in self._rows(statement, params)}

    def allocate_topic_ids(self, count: int) -> list[int]:
        with self.db.connection("allocating topic ids") as conn:
            row = conn.execute(
                self._q(
                    "INSERT INTO {meta} (key, value) VALUES ('next_topic_id', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = "
                    "((lightmem_meta.value)::bigint + %s)::text RETURNING value",
                    meta="lightmem_meta",
                ),
                (str(count), count),
            ).fetchone()
        end = int(row[0]) if row else count
        return list(range(end - count, end))

    def assign_segments(
        self,
        assignments: dict[str, int],
        *,
        scope: Scope,
        contents: dict[str, str] | None = None,
        dropped: Sequence[str] = (),
    ) -> None:
        key = scope_key(scope)
        with (
            self.db.connection("moving messages to short-term") as conn,
            conn.pipeline(),
            conn.transaction(),
            conn.cursor() as cur,
        ):
            pg.without_flush_wait(conn)  # lost: the messages are segmented again
            if contents:
                cur.executemany(
                    self._q(
                        "UPDATE {m} SET content = %s WHERE id = %s AND scope_key = %s", m="messages"
                    ),
                    [(c, mid, key) for mid, c in contents.items()],
                )
            if assignments:
                cur.executemany(
                    self._q(
                        "UPDATE {m} SET state = 'short_term', topic_id = %s "
                        "WHERE id = %s AND scope_key = %s AND state = 'sensory'",
                        m="messages",
                    ),
                    [(topic, mid, key) for mid, topic in assignments.items()],
                )
            if dropped:
                cur.execute(
                    self._q(
                        "UPDATE {m} SET state = 'dropped' "
                        "WHERE id = ANY(%s) AND scope_key = %s AND state = 'sensory'",
                        m="messages",
                    ),
                    (list(dropped), key),
                )

    # -- batches -----------------------------------------------------------------------------

    def create_batch(self, message_ids: Sequence[str], *, scope: Scope) -> str:
        batch_id = uuid.uuid4().hex
        key = scope_key(scope)
        with self.db.connection("creating a batch") as conn, conn.pipeline(), conn.transaction():
            pg.without_flush_wait(conn)  # lost: the messages are batched again
            conn.execute(
                self._q(
                    "INSERT INTO {b} (id, state, scope_key, user_id, agent_id, run_id) "
                    "VALUES (%s, 'pending', %s, %s, %s, %s)",
                    b="batches",
                ),
                (batch_id, key, scope.user_id, scope.agent_id, scope.run_id),
            )
            conn.execute(
                self._q(
                    "UPDATE {m} SET state = 'batched', batch_id = %s "
                    "WHERE id = ANY(%s) AND scope_key = %s AND state = 'short_term'",
                    m="messages",
                ),
                (batch_id, list(message_ids), key),
            )
        return batch_id

    def merge_batches(self, batch_ids: Sequence[str]) -> str:
        *others, into = batch_ids
        if not others:
            return into
        with self.db.connection("merging batches") as conn, conn.transaction():
            rows = conn.execute(
                self._q("SELECT id, state FROM {b} WHERE id = ANY(%s) FOR UPDATE", b="batches"),
                (list(batch_ids),),
            ).fetchall()
            if len(rows) != len(set(batch_ids)) or any(r[1] not in _CLAIMABLE for r in rows):
                raise ValueError(
                    f"merge_batches: not all of {list(batch_ids)} are unfinished and unclaimed"
                )
            conn.execute(
                self._q("UPDATE {m} SET batch_id = %s WHERE batch_id = ANY(%s)", m="messages"),
                (into, others),
            )
            conn.execute(self._q("DELETE FROM {b} WHERE id = ANY(%s)", b="batches"), (others,))
            conn.execute(
                self._q("UPDATE {b} SET updated_at = now() WHERE id = %s", b="batches"), (into,)
            )
        return into

    def batch(self, batch_id: str) -> Batch | None:
        rows = self._rows(self._q("SELECT * FROM {b} WHERE id = %s", b="batches"), [batch_id])
        return _batch(rows[0]) if rows else None

    def batches(
        self,
        states: Iterable[BatchState] = UNFINISHED_STATES,
        *,
        scope: Scope | None = None,
        due_by: dt.datetime | None = None,
    ) -> list[Batch]:
        wanted = sorted(BatchState(s).value for s in states)
        if not wanted:
            return []
        if any(s in _CLAIMABLE for s in wanted):
            self._reap()  # a dead claimant's batches count as pending again
        clauses, params = ["state = ANY(%s)"], [wanted]
        if scope is not None:
            clauses.append("scope_key = %s")
            params.append(scope_key(scope))
        if due_by is not None:
            clauses.append("(retry_at IS NULL OR retry_at <= %s)")
            params.append(_utc(due_by))
        statement = self._q(
            "SELECT * FROM {b} WHERE " + " AND ".join(clauses) + " ORDER BY seq", b="batches"
        )
        return [_batch(r) for r in self._rows(statement, params)]

    def pending_batches(self) -> list[str]:
        return [b.id for b in self.batches()]

    def next_retry_at(self) -> dt.datetime | None:
        states = [s.value for s in SCHEDULED_STATES]
        rows = self._rows(
            self._q("SELECT min(retry_at) AS t FROM {b} WHERE state = ANY(%s)", b="batches"),
            [states],
        )
        return rows[0]["t"] if rows else None

    def batch_messages(self, batch_id: str) -> list[JournalRow]:
        rows = self._rows(
            self._q("SELECT * FROM {m} WHERE batch_id = %s ORDER BY seq", m="messages"), [batch_id]
        )
        return [_journal_row(r) for r in rows]

    def set_batch_state(
        self,
        batch_id: str,
        state: BatchState,
        *,
        error: str = "",
        retry_at: dt.datetime | None = None,
        attempted: bool = False,
    ) -> None:
        state = BatchState(state)
        if state is BatchState.DONE:
            raise ValueError("set_batch_state: a batch is done only through complete_batch")
        with self.db.connection("recording a batch's state") as conn:
            conn.execute(
                self._q(
                    "UPDATE {b} SET state = %s, attempts = attempts + %s, last_error = %s, "
                    "retry_at = %s, claimed_pid = NULL, claimed_start = NULL, updated_at = now() "
                    "WHERE id = %s AND state != 'done'",
                    b="batches",
                ),
                (state.value, int(attempted), error[:2000], _utc(retry_at), batch_id),
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
        stored: list[MemoryEntry] = []
        # Pipelined: a round trip where a result is read (the batch, the new entries' ids),
        # the other statements go with the commit.
        with (
            self.db.connection("storing a batch's entries") as conn,
            conn.pipeline(),
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(
                self._q("SELECT *, now() AS _now FROM {b} WHERE id = %s FOR UPDATE", b="batches"),
                (batch_id,),
            )
            batch = cur.fetchone()
            if batch is None or batch["state"] == BatchState.DONE.value:
                return []
            stamp = batch["_now"]
            fresh = [attrs.evolve(e, created_at=stamp, updated_at=stamp) for e in entries]
            stored = self._insert_entries(
                cur, fresh, batch_id=batch_id, history="extracted", stamp=stamp
            )
            if unextracted:
                rest = uuid.uuid4().hex
                cur.execute(
                    self._q(
                        "INSERT INTO {b} (id, state, scope_key, user_id, agent_id, run_id, "
                        "attempts, last_error, retry_at) "
                        "VALUES (%s, %s, %s, %s, %s, %s, 1, %s, %s)",
                        b="batches",
                    ),
                    (
                        rest,
                        BatchState(rest_state).value,
                        batch["scope_key"],
                        batch["user_id"],
                        batch["agent_id"],
                        batch["run_id"],
                        (error or "not extracted")[:2000],
                        _utc(retry_at),
                    ),
                )
                cur.execute(
                    self._q(
                        "UPDATE {m} SET batch_id = %s WHERE batch_id = %s AND id = ANY(%s)",
                        m="messages",
                    ),
                    (rest, batch_id, list(unextracted)),
                )
            cur.execute(
                self._q(
                    "UPDATE {b} SET state = 'done', attempts = attempts + 1, claimed_pid = NULL, "
                    "claimed_start = NULL, updated_at = now() WHERE id = %s",
                    b="batches",
                ),
                (batch_id,),
            )
            cur.execute(
                self._q("UPDATE {m} SET state = 'extracted' WHERE batch_id = %s", m="messages"),
                (batch_id,),
            )
            self._stamp_revision(cur, [e.id for e in stored])
        return stored

    def _insert_entries(
        self,
        cur: Any,
        entries: Sequence[MemoryEntry],
        *,
        batch_id: str | None,
        history: str | None,
        revision: int = 0,
        stamp: dt.datetime | None = None,
    ) -> list[MemoryEntry]:
        """Insert ``entries`` (the first of each id) with their sources and, when ``history``
        names a reason, an ``add`` history row each; known ids are skipped. Three statements
        whatever the number of entries. Their revision: ``revision`` when the caller took one
        already (:meth:`_take_revision`), else the caller stamps the new ones afterwards
        (:meth:`_stamp_revision`, last in its transaction). Returns the entries inserted."""
        first: dict[str, MemoryEntry] = {}
        for e in entries:  # an id given twice: its first entry, in its first place
            first.setdefault(e.id, e)
        unique = list(first.values())
        if not unique:
            return []
        if stamp is None:
            now = cur.execute("SELECT now()").fetchone()
            stamp = now[0] if not isinstance(now, dict) else now["now"]
        columns = _entry_columns(batch_id, revision, stamp)
        names = sql.SQL(", ").join(sql.Identifier(c) for c, _, _ in columns)
        # jsonb goes as text (an array of jsonb values has no array adapter of its own)
        arrays = sql.SQL(", ").join(
            sql.SQL("%s::text[]" if kind == "jsonb" else "%s::{}[]").format(sql.SQL(kind))
            for _, kind, _ in columns
        )
        values = sql.SQL(", ").join(
            sql.SQL("{}::jsonb" if kind == "jsonb" else "{}").format(sql.Identifier(c))
            for c, kind, _ in columns
        )
        cur.execute(
            sql.SQL(
                "INSERT INTO {e} ({names}) SELECT {values} FROM unnest({arrays}) AS r({names}) "
                "ON CONFLICT (id) DO NOTHING RETURNING id"
            ).format(e=self._t("entries"), names=names, values=values, arrays=arrays),
            [[get(e) for e in unique] for _, _, get in columns],
        )
        new = {r[0] if not isinstance(r, dict) else r["id"] for r in cur.fetchall()}
        inserted = [e for e in unique if e.id in new]
        if not inserted:
            return []
        sources = [(e.id, m, i) for e in inserted for i, m in enumerate(e.source_message_ids)]
        if sources:
            cur.execute(
                self._q(
                    "INSERT INTO {s} (entry_id, message_id, position) "
                    "SELECT * FROM unnest(%s::text[], %s::text[], %s::integer[]) "
                    "ON CONFLICT DO NOTHING",
                    s="entry_sources",
                ),
                [list(column) for column in zip(*sources, strict=True)],
            )
        if history is not None:
            cur.execute(
                self._q(
                    "INSERT INTO {h} (entry_id, action, new_memory, reason, at) "
                    "SELECT id, 'add', memory, %s, %s FROM unnest(%s::text[], %s::text[]) "
                    "AS r(id, memory)",
                    h="history",
                ),
                (history, stamp, [e.id for e in inserted], [e.memory for e in inserted]),
            )
        return inserted

    def _stamp_revision(self, cur: Any, ids: Sequence[str]) -> None:
        """Give ``ids`` the next revision. Last in the writing transaction: the clock's row
        stays locked until the commit, so a later revision never commits before an earlier
        one (a reader that has seen revision ``r`` has seen every change up to ``r``)."""
        if not ids:
            return
        cur.execute(
            self._q(
                "WITH r AS (UPDATE {c} SET value = value + 1 RETURNING value) "
                "UPDATE {e} SET revision = (SELECT value FROM r) WHERE id = ANY(%s)",
                c="revision_clock",
                e="entries",
            ),
            (list(ids),),
        )

    def _take_revision(self, cur: Any) -> int:
        """The next revision, the clock's row locked until the transaction ends (for a
        transaction that writes many rows: they are inserted with it, not updated after)."""
        cur.execute(self._q("UPDATE {c} SET value = value + 1 RETURNING value", c="revision_clock"))
        row = cur.fetchone()
        return int(row[0] if not isinstance(row, dict) else row["value"])

    def restore_entries(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        """Insert entries as an export file holds them (status, time stamps, provenance; no
        history row: the history comes with them). Known ids are skipped; returns the new
        (:meth:`lightmem_hookspecs.EntryRestore.restore_entries`).

        The rows are copied (``COPY``, binary) into a temporary table and inserted from there
        with their sources in one statement: no parameter arrays built and parsed per column.
        """
        first: dict[str, MemoryEntry] = {}
        for e in entries:  # an id given twice: its first entry, in its first place
            first.setdefault(e.id, e)
        unique = list(first.values())
        if not unique:
            return []
        columns = [(name, kind) for name, kind, _ in _entry_columns(None, 0, None)]
        # jsonb and time stamps travel as text, cast on the way in (a time stamp without a
        # zone is read in the session's, as a parameter would be).
        cast = {"jsonb", "timestamptz"}
        staged = [(n, "text" if k in cast else k) for n, k in columns]
        names = sql.SQL(", ").join(sql.Identifier(n) for n, _ in columns)
        values = sql.SQL(", ").join(
            sql.SQL("{}::{}").format(sql.Identifier(n), sql.SQL(k))
            if k in cast
            else sql.Identifier(n)
            for n, k in columns
        )
        temp = sql.Identifier("lightmem_restore")
        with (
            self.db.connection("importing entries") as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            revision = self._take_revision(cur)
            stamp = cur.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
            getters = [
                (lambda e, get=get: _ts_out(get(e))) if kind == "timestamptz" else get
                for _, kind, get in _entry_columns(None, revision, stamp)
            ]
            cur.execute(
                sql.SQL(
                    "CREATE TEMP TABLE {t} ({cols}, sources text[], ord integer) ON COMMIT DROP"
                ).format(
                    t=temp,
                    cols=sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(k)) for n, k in staged
                    ),
                )
            )
            with cur.copy(sql.SQL("COPY {t} FROM STDIN (FORMAT BINARY)").format(t=temp)) as copy:
                copy.set_types([_COPY_NAMES.get(k, k) for _, k in staged] + ["text[]", "int4"])
                for i, e in enumerate(unique):
                    copy.write_row([get(e) for get in getters] + [list(e.source_message_ids), i])
            cur.execute(
                sql.SQL(
                    "WITH new AS (INSERT INTO {e} ({names}) SELECT {values} FROM {t} ORDER BY ord "
                    "ON CONFLICT (id) DO NOTHING RETURNING id), "
                    "src AS (INSERT INTO {s} (entry_id, message_id, position) "
                    "SELECT r.id, m.id, (m.n - 1)::integer FROM {t} AS r JOIN new USING (id), "
                    "unnest(r.sources) WITH ORDINALITY AS m(id, n) ON CONFLICT DO NOTHING) "
                    "SELECT id FROM new"
                ).format(
                    e=self._t("entries"),
                    s=self._t("entry_sources"),
                    t=temp,
                    names=names,
                    values=values,
                )
            )
            fresh = {r[0] for r in cur.fetchall()}
        new = [e for e in unique if e.id in fresh]
        if self._growth.wrote(len(new)):  # row counts and visibility after growth
            with self.db.connection("vacuuming entries") as conn:
                conn.execute(self._q("VACUUM (ANALYZE) {e}", e="entries"))
                conn.execute(self._q("VACUUM (ANALYZE) {s}", s="entry_sources"))
        return new

    def restore_history(self, rows: Sequence[dict[str, Any]]) -> int:
        """Append history rows as an export file holds them (their own time stamps;
        :meth:`lightmem_hookspecs.EntryRestore.restore_history`)."""
        if not rows:
            return 0
        with (
            self.db.connection("importing history") as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            cur.executemany(
                self._q(
                    "INSERT INTO {h} (entry_id, action, old_memory, new_memory, reason, "
                    "replaced_by, at) VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s, now()))",
                    h="history",
                ),
                [
                    (
                        r["entry_id"],
                        r["action"],
                        r.get("old_memory"),
                        r.get("new_memory"),
                        r.get("reason") or "",
                        r.get("replaced_by"),
                        r.get("at"),
                    )
                    for r in rows
                ],
            )
        return len(rows)

    # -- entries -----------------------------------------------------------------------------

    def entries(
        self,
        ids: Iterable[str] | None = None,
        *,
        status: str | None = "active",
        scope: Scope | None = None,
        unindexed_only: bool = False,
        changed_since: int | None = None,
    ) -> list[MemoryEntry]:
        clauses: list[str] = []
        params: list[Any] = []
        if ids is not None:
            clauses.append("id = ANY(%s)")
            params.append(list(ids))
        if status is not None:
            clauses.append("status = %s")
            params.append(status)
        if scope is not None:
            clauses.append("scope_key = %s")
            params.append(scope_key(scope))
        if unindexed_only:
            clauses.append("NOT indexed")
        if changed_since is not None:
            clauses.append("revision > %s")
            params.append(changed_since)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        # The entries with their sources: one statement, one round trip.
        rows = self._rows(
            self._q(
                "SELECT *, ARRAY(SELECT message_id FROM {s} WHERE entry_id = {e}.id "
                "ORDER BY position) AS sources FROM {e}" + where + " ORDER BY seq",
                e="entries",
                s="entry_sources",
            ),
            params,
        )
        return [_entry(r, tuple(r["sources"])) for r in rows]

    def entry_facets(self, ids: Sequence[str]) -> dict[str, tuple[int | None, str | None]]:
        rows = self._rows(
            self._q(
                "SELECT id, topic_id, COALESCE(NULLIF(speaker_name, ''), speaker_id) AS speaker "
                "FROM {e} WHERE id = ANY(%s) AND status = 'active'",
                e="entries",
            ),
            [list(ids)],
        )
        return {r["id"]: (r["topic_id"], r["speaker"]) for r in rows}

    def entry_positions(self, ids: Sequence[str]) -> dict[str, int]:
        rows = self._rows(
            self._q("SELECT id, seq FROM {e} WHERE id = ANY(%s)", e="entries"),
            [list(ids)],
        )
        return {r["id"]: int(r["seq"]) for r in rows}

    def get_entry(self, entry_id: str) -> MemoryEntry | None:
        found = self.entries([entry_id], status=None)
        return found[0] if found else None

    def count_entries(self, status: str | None = "active") -> int:
        if status is None:
            rows = self._rows(self._q("SELECT count(*) AS n FROM {e}", e="entries"), [])
        else:
            rows = self._rows(
                self._q("SELECT count(*) AS n FROM {e} WHERE status = %s", e="entries"), [status]
            )
        return int(rows[0]["n"])

    def mark_indexed(self, ids: Sequence[str], indexed: bool = True) -> None:
        if not ids:
            return
        with (
            self.db.connection("marking entries indexed") as conn,
            conn.pipeline(),
            conn.transaction(),
        ):
            if indexed:
                pg.without_flush_wait(conn)  # lost: the entries are indexed again at open
            conn.execute(
                self._q("UPDATE {e} SET indexed = %s WHERE id = ANY(%s)", e="entries"),
                (indexed, list(ids)),
            )

    def max_revision(self) -> int:
        rows = self._rows(
            self._q("SELECT coalesce(max(revision), 0) AS r FROM {e}", e="entries"), []
        )
        return int(rows[0]["r"])

    def update_entry_text(self, entry_id: str, new_memory: str, reason: str) -> MemoryEntry:
        with self.db.connection("editing an entry") as conn, conn.transaction():
            row = conn.execute(
                self._q("SELECT memory FROM {e} WHERE id = %s FOR UPDATE", e="entries"),
                (entry_id,),
            ).fetchone()
            if row is None:
                raise EntryNotFoundError(f"entry {entry_id!r} does not exist")
            conn.execute(
                self._q(
                    "UPDATE {e} SET memory = %s, indexed = false, updated_at = now() WHERE id = %s",
                    e="entries",
                ),
                (new_memory, entry_id),
            )
            conn.execute(
                self._q(
                    "INSERT INTO {h} (entry_id, action, old_memory, new_memory, reason) "
                    "VALUES (%s, 'update', %s, %s, %s)",
                    h="history",
                ),
                (entry_id, row[0], new_memory, reason),
            )
            self._stamp_revision(conn.cursor(), [entry_id])
        entry = self.get_entry(entry_id)
        assert entry is not None
        return entry

    def retire_entry(
        self, entry_id: str, *, action: str, reason: str, replaced_by: str | None = None
    ) -> None:
        status = {"delete": "deleted", "supersede": "superseded"}[action]
        with self.db.connection("retiring an entry") as conn, conn.transaction():
            row = conn.execute(
                self._q("SELECT memory FROM {e} WHERE id = %s FOR UPDATE", e="entries"),
                (entry_id,),
            ).fetchone()
            if row is None:
                raise EntryNotFoundError(f"entry {entry_id!r} does not exist")
            conn.execute(
                self._q(
                    "UPDATE {e} SET status = %s, replaced_by = %s, updated_at = now() "
                    "WHERE id = %s",
                    e="entries",
                ),
                (status, replaced_by, entry_id),
            )
            conn.execute(
                self._q(
                    "INSERT INTO {h} (entry_id, action, old_memory, reason, replaced_by) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    h="history",
                ),
                (entry_id, action, row[0], reason, replaced_by),
            )
            self._stamp_revision(conn.cursor(), [entry_id])

    def history(self, entry_id: str | None = None) -> list[dict[str, Any]]:
        if entry_id is None:
            rows = self._rows(self._q("SELECT * FROM {h} ORDER BY seq", h="history"), [])
        else:
            rows = self._rows(
                self._q("SELECT * FROM {h} WHERE entry_id = %s ORDER BY seq", h="history"),
                [entry_id],
            )
        return [{**r, "at": r["at"].isoformat()} for r in rows]

    # -- usage and the update queue ----------------------------------------------------------

    def add_usage(self, operation: str, usage: Usage) -> None:
        """Add ``usage`` to the operation's totals. Committed without waiting for its WAL flush
        (``synchronous_commit = off`` for this transaction alone): the row is visible to every
        reader at once, and a server crash within a fraction of a second (the WAL writer's
        delay) could lose the last few bookings, never user data. A search books one, so it
        does not wait for a disk flush; one round trip (pipelined)."""
        if usage == Usage():
            return
        with (
            self.db.connection("recording usage") as conn,
            conn.pipeline(),
            conn.transaction(),
        ):
            pg.without_flush_wait(conn)
            conn.execute(
                self._q(
                    "INSERT INTO {u} (operation, llm_calls, prompt_tokens, completion_tokens, "
                    "embedder_calls, embedded_texts) VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (operation) DO UPDATE SET "
                    "llm_calls = usage.llm_calls + excluded.llm_calls, "
                    "prompt_tokens = usage.prompt_tokens + excluded.prompt_tokens, "
                    "completion_tokens = usage.completion_tokens + excluded.completion_tokens, "
                    "embedder_calls = usage.embedder_calls + excluded.embedder_calls, "
                    "embedded_texts = usage.embedded_texts + excluded.embedded_texts",
                    u="usage",
                ),
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
        rows = self._rows(self._q("SELECT * FROM {u} ORDER BY operation", u="usage"), [])
        return {
            r["operation"]: Usage(
                llm_calls=int(r["llm_calls"]),
                prompt_tokens=int(r["prompt_tokens"]),
                completion_tokens=int(r["completion_tokens"]),
                embedder_calls=int(r["embedder_calls"]),
                embedded_texts=int(r["embedded_texts"]),
            )
            for r in rows
        }

    def save_update_queue(self, queue: dict[str, list[tuple[str, float]]]) -> None:
        if not queue:
            return
        with (
            self.db.connection("saving the update queue") as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            cur.executemany(
                self._q(
                    "INSERT INTO {q} (entry_id, candidates) VALUES (%s, %s) ON CONFLICT (entry_id) "
                    "DO UPDATE SET candidates = excluded.candidates, built_at = now()",
                    q="update_queue",
                ),
                [(eid, Jsonb([list(c) for c in cands])) for eid, cands in queue.items()],
            )

    def update_queue(self) -> dict[str, list[tuple[str, float]]]:
        rows = self._rows(
            self._q("SELECT entry_id, candidates FROM {q} ORDER BY entry_id", q="update_queue"), []
        )
        return {r["entry_id"]: [(c[0], float(c[1])) for c in r["candidates"]] for r in rows}

    def clear_update_queue(self) -> None:
        with self.db.connection("clearing the update queue") as conn:
            conn.execute(self._q("DELETE FROM {q}", q="update_queue"))

    def erase_scope(
        self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> dict[str, Any]:
        """Remove every message, batch, entry, source link, history row and queued update of
        the scopes matching the given fields (a field not given matches any value), in one
        transaction. Returns the ids of the removed entries and the counts. (The rows' bytes
        leave the data files when Postgres vacuums them.)
        (:meth:`lightmem_hookspecs.ScopeErase.erase_scope`)"""
        given = [
            (f, v)
            for f, v in (("user_id", user_id), ("agent_id", agent_id), ("run_id", run_id))
            if v is not None
        ]
        if not given:
            raise ValueError(
                "erase_scope: name a user_id, agent_id or run_id (none would erase every scope)"
            )
        where = " AND ".join(f"{f} = %s" for f, _ in given)
        params = [v for _, v in given]
        with (
            self.db.connection("erasing a scope") as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            cur.execute(
                self._q(f"DELETE FROM {{e}} WHERE {where} RETURNING id", e="entries"), params
            )
            ids = [r[0] for r in cur.fetchall()]
            counts = {"entries": len(ids), "history": 0, "messages": 0, "batches": 0}
            if ids:
                cur.execute(
                    self._q("DELETE FROM {s} WHERE entry_id = ANY(%s)", s="entry_sources"), (ids,)
                )
                cur.execute(
                    self._q("DELETE FROM {h} WHERE entry_id = ANY(%s)", h="history"), (ids,)
                )
                counts["history"] = cur.rowcount
                cur.execute(
                    self._q("DELETE FROM {q} WHERE entry_id = ANY(%s)", q="update_queue"), (ids,)
                )
            cur.execute(self._q(f"DELETE FROM {{m}} WHERE {where}", m="messages"), params)
            counts["messages"] = cur.rowcount
            cur.execute(self._q(f"DELETE FROM {{b}} WHERE {where}", b="batches"), params)
            counts["batches"] = cur.rowcount
        return {"entry_ids": ids, **counts}

    def stats(self) -> dict[str, Any]:
        def grouped(table: str, column: str) -> dict[str, int]:
            rows = self._rows(
                self._q(
                    f"SELECT {column} AS k, count(*) AS n FROM {{t}} GROUP BY {column}", t=table
                ),
                [],
            )
            return {r["k"]: int(r["n"]) for r in rows}

        return {
            "entries": grouped("entries", "status"),
            "messages": grouped("messages", "state"),
            "batches": grouped("batches", "state"),
            "record_store": {"engine": "postgres", "server": self.db.where, "schema": self.schema},
        }

    # -- plumbing ----------------------------------------------------------------------------

    def _rows(self, statement: sql.Composable, params: Sequence[Any]) -> list[dict[str, Any]]:
        with (
            self.db.connection("reading the record store") as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(statement, params)
            return cur.fetchall()


def _journal_row(r: dict[str, Any]) -> JournalRow:
    message = Message(
        id=r["id"],
        role=r["role"],
        content=r["content"],
        original_content=r["original_content"],
        time_stamp=_ts_in(r["time_stamp"]),
        speaker_id=r["speaker_id"],
        speaker_name=r["speaker_name"],
        scope=Scope(r["user_id"], r["agent_id"], r["run_id"]),
        metadata=r["metadata"],
    )
    return JournalRow(r["seq"], message, r["state"], r["topic_id"], r["batch_id"])


def _entry(r: dict[str, Any], sources: tuple[str, ...]) -> MemoryEntry:
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
        keywords=tuple(r["keywords"]),
        entities=tuple(r["entities"]),
        topic_summary=r["topic_summary"],
        original_memory=r["original_memory"],
        importance=r["importance"],
        status=r["status"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        metadata={
            **r["metadata"],
            **({"replaced_by": r["replaced_by"]} if r["replaced_by"] else {}),
        },
    )


def _batch(r: dict[str, Any]) -> Batch:
    return Batch(
        id=r["id"],
        state=BatchState(r["state"]),
        scope=Scope(r["user_id"], r["agent_id"], r["run_id"]),
        attempts=int(r["attempts"]),
        error=r["last_error"] or "",
        retry_at=r["retry_at"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )
