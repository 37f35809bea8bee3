"""What both indexes share: one SQLite file in WAL mode, a writer, a reader per thread, filters."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lightmem_hookspecs import SearchFilter

log = logging.getLogger("lightmem")

#: Payload keys kept in columns of ``docs`` so that filters run inside SQLite.
FILTER_KEYS = ("user_id", "agent_id", "run_id", "speaker", "topic_id", "time_stamp")
FILTER_COLUMNS = "user_id, agent_id, run_id, speaker, topic_id, time_stamp REAL"


def scalar(value: Any) -> Any:
    """A payload value as SQLite stores it (anything that is not a plain scalar as JSON)."""
    if value is None or isinstance(value, str | int | float):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def filter_fields(payload: Mapping[str, Any]) -> list[Any]:
    """The values of :data:`FILTER_KEYS` for one record, time stamps as floats."""
    fields = [scalar(payload.get(key)) for key in FILTER_KEYS]
    if fields[-1] is not None:
        fields[-1] = float(fields[-1])
    return fields


def filter_sql(flt: SearchFilter | None, table: str = "d") -> tuple[list[str], list[Any]]:
    """``WHERE`` clauses (on ``table``'s columns) and parameters equivalent to ``flt.matches``."""
    where: list[str] = []
    params: list[Any] = []
    if flt is None or flt.is_empty:
        return where, params
    for key in ("user_id", "agent_id", "run_id", "speaker", "topic_id"):
        wanted = getattr(flt, key)
        if wanted is not None:
            where.append(f"{table}.{key} = ?")
            params.append(wanted)
    for bound, op in (("time_gt", ">"), ("time_gte", ">="), ("time_lt", "<"), ("time_lte", "<=")):
        value = getattr(flt, bound)
        if value is not None:
            where.append(f"{table}.time_stamp {op} ?")
            params.append(float(value))
    if flt.exclude_ids:
        where.append(f"{table}.id NOT IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(sorted(flt.exclude_ids)))
    return where, params


class SQLiteFile:
    """One SQLite file: a writer connection behind a lock, a reader connection per thread.

    In WAL mode readers see the last committed state and never wait for the writer, so a
    search runs while another thread indexes. ``schema`` is created on first open and
    ``version`` recorded; a file written by an older version named in ``migrations`` is brought
    up to date in place (one transaction), one written by any other version is refused.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        schema: str,
        version: str,
        migrations: Mapping[str, Callable[[sqlite3.Connection], None]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        self._schema = (schema, version, dict(migrations or {}))
        #: Where a damaged file found on opening was moved (``None``: it was sound).
        self.set_aside: Path | None = None
        try:
            self._open(schema, version, migrations or {})
        except sqlite3.DatabaseError as exc:
            # The index is derived data: a damaged file is moved aside (kept for inspection)
            # and a new one started empty; the core fills it again from the record store.
            self.close()
            self._closed = False
            self.set_aside = _move_aside(self.path)
            log.warning(
                "lexical index %s is damaged (%s): moved to %s; it is rebuilt from the record "
                "store",
                self.path,
                exc,
                self.set_aside,
            )
            self._open(schema, version, migrations or {})

    def _open(
        self,
        schema: str,
        version: str,
        migrations: Mapping[str, Callable[[sqlite3.Connection], None]],
    ) -> None:
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.executescript(  # (executescript commits: it runs outside write())
            "BEGIN IMMEDIATE;"
            + schema
            + "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT); COMMIT;"
        )
        with self.write() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (version,))
            elif row[0] != version and row[0] in migrations:
                migrations[row[0]](conn)  # in this transaction: all of it or nothing
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (version,))
            elif row[0] != version:
                raise RuntimeError(
                    f"{self.path}: lexical index written by {row[0]!r}, this plugin reads "
                    f"{version!r}; delete the file and run `lightmem reindex`"
                )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA synchronous=NORMAL")
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def reader(self) -> sqlite3.Connection:
        """This thread's reading connection."""
        if self._closed:
            raise RuntimeError(f"{self.path}: the lexical index is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees one committed state."""
        conn = self.reader()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (all of it or nothing), writers one at a time."""
        if self._closed:
            raise RuntimeError(f"{self.path}: the lexical index is closed")
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def compact(self, before: Callable[[sqlite3.Connection], None] | None = None) -> None:
        """Rewrite the file so no byte of a deleted record remains in it or in its write-ahead
        log (``VACUUM``, then the log checkpointed and truncated). ``before(conn)`` runs first,
        in a write transaction (e.g. an FTS5 ``optimize``)."""
        if before is not None:
            with self.write() as conn:
                before(conn)
        with self._write_lock:
            self._writer.execute("VACUUM")
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def reset(self) -> Path | None:
        """Start the file again, empty, for a rebuild from the record store. A damaged file
        (``PRAGMA quick_check`` fails) is moved aside and kept, a sound one deleted. Returns
        where a damaged file went, now or when this file was opened (``None``: none was)."""
        damaged = not self._sound()
        self.close()
        self._local = threading.local()
        with self._connections_lock:
            self._connections = []
        moved = self.set_aside
        if damaged:
            moved = _move_aside(self.path)
            log.warning(
                "lexical index %s is damaged: moved to %s; it is rebuilt from the record store",
                self.path,
                moved,
            )
        else:
            for suffix in ("", "-wal", "-shm"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
        self._closed = False
        self.set_aside = None
        self._open(*self._schema)
        return moved

    def _sound(self) -> bool:
        try:
            with self._write_lock:
                rows = self._writer.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError:
            return False
        return rows == [("ok",)]

    def close(self) -> None:
        """Close every connection (readers of all threads too); closing twice is harmless."""
        self._closed = True
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()


def _move_aside(path: Path) -> Path:
    """Rename ``path`` (and its write-ahead log files) to a free ``<name>.damaged-N``."""
    n = 1
    while path.with_name(f"{path.name}.damaged-{n}").exists():
        n += 1
    target = path.with_name(f"{path.name}.damaged-{n}")
    for suffix in ("", "-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target


def unique_last(records: Sequence[Any]) -> list[Any]:
    """Records with duplicate ids reduced to the last one of each id, in that one's position."""
    latest: dict[str, Any] = {}
    for record in records:
        latest.pop(record.id, None)
        latest[record.id] = record
    return list(latest.values())
