"""Connections: settings resolved once, a pool shared by the backends of one process that use
the same server, server errors turned into this plugin's typed errors (password never shown).

psycopg and psycopg_pool are imported here, and this module only from the backends' factories.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from .dsn import configured_dsn, scrub
from .errors import (
    AuthenticationFailedError,
    ExtensionMissingError,
    PostgresError,
    SchemaTooNewError,
    ServerUnreachableError,
)

log = logging.getLogger("lightmem.postgres")

#: SQLSTATEs that mean "the connection is gone" (class 08, admin shutdown, crash shutdown,
#: cannot connect now).
_GONE = ("57P01", "57P02", "57P03")


def conninfo(
    dsn: str | None,
    *,
    sslmode: str | None = None,
    sslrootcert: str | None = None,
    connect_timeout: float = 10.0,
    application_name: str = "lightmem",
) -> str:
    """The libpq connection string: the DSN (or ``$LIGHTMEM_POSTGRES_DSN``) with the TLS and
    time-out options passed through."""
    base = configured_dsn(dsn)
    try:
        params = conninfo_to_dict(base)
    except psycopg.ProgrammingError as exc:
        raise PostgresError(
            f"the Postgres DSN {scrub(base)!r} cannot be parsed: {scrub(str(exc), base)}. Use "
            f"postgresql://user:password@host:5432/dbname or 'host=... dbname=...'."
        ) from None
    # The DSN's own time-out wins over the option's default; TLS options given win over it.
    params.setdefault("connect_timeout", max(1, round(connect_timeout)))
    params.setdefault("application_name", application_name)
    if sslmode is not None:
        params["sslmode"] = sslmode
    if sslrootcert is not None:
        params["sslrootcert"] = sslrootcert
    return make_conninfo(**params)


def describe(info: str) -> str:
    """Where ``info`` connects, for messages: ``host:port/dbname as user`` (no password)."""
    params = conninfo_to_dict(info)
    host = params.get("host") or os.environ.get("PGHOST") or "localhost (default socket)"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    db = params.get("dbname") or os.environ.get("PGDATABASE") or params.get("user") or "postgres"
    user = params.get("user") or os.environ.get("PGUSER")
    where = f"{host}:{port}/{db}"
    return f"{where} as {user}" if user else where


def _password(info: str) -> str | None:
    return conninfo_to_dict(info).get("password") or os.environ.get("PGPASSWORD")


def is_connection_lost(exc: BaseException) -> bool:
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith("08") or state in _GONE


def translate(exc: BaseException, info: str, doing: str) -> BaseException:
    """A psycopg error as this plugin's typed error (or ``exc`` itself when not a server or
    connection problem)."""
    where = describe(info)
    text = scrub(str(exc).strip(), _password(info))
    state = getattr(exc, "sqlstate", None)
    if (
        state in ("28P01", "28000")
        or "password authentication failed" in text
        or ("no password supplied" in text)
    ):
        return AuthenticationFailedError(
            f"Postgres at {where} refused the login while {doing}: {text}. Check the user name "
            f"and password in configs.dsn (or $LIGHTMEM_POSTGRES_DSN, PGPASSWORD, ~/.pgpass)."
        )
    if state == "3D000" or ("database" in text and "does not exist" in text):
        return PostgresError(
            f"Postgres at {where}: the database does not exist ({text}). Create it "
            f"(createdb) or name another one in configs.dsn."
        )
    if is_connection_lost(exc):
        return ServerUnreachableError(
            f"cannot reach Postgres at {where} while {doing}: {text or type(exc).__name__}. "
            f"Check that the server is running and reachable from here (host, port, "
            f"firewall, sslmode); nothing of this operation was committed."
        )
    return exc


#: A connection given back to the pool this recently (seconds) is handed out again without a
#: round trip to check it; one idle longer is checked first (the server may have dropped it).
FRESH_FOR = 1.0


def _readable(fd: int) -> bool:
    """Whether the socket has something to read now (without waiting)."""
    if hasattr(select, "poll"):  # no limit on the descriptor's number
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # pragma: no cover - Windows


class Database:
    """A connection pool to one server (autocommit connections; writers open transactions)."""

    def __init__(self, info: str, *, min_size: int, max_size: int, timeout: float) -> None:
        self.info = info
        self.where = describe(info)
        self.timeout = timeout
        self._returned: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        self._probe()
        self.pool = ConnectionPool(
            info,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            check=self._check,
            reset=self._given_back,
            timeout=timeout,
            open=True,
            name=f"lightmem@{self.where}",
        )

    def _given_back(self, conn: psycopg.Connection[Any]) -> None:
        self._returned[conn] = time.monotonic()

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """A connection used a moment ago whose socket holds nothing unread is handed out
        without a round trip (a busy process saves one per checkout). Any other (idle longer,
        or the server sent something while it was idle: a shutdown's goodbye, the socket's
        end) is checked by the pool's query, which raises for a dead one."""
        returned = self._returned.get(conn)
        fresh = returned is not None and time.monotonic() - returned < FRESH_FOR
        if fresh and not conn.broken and not _readable(conn.fileno()):
            return
        ConnectionPool.check_connection(conn)

    def _probe(self) -> None:
        """One direct connection first: a precise error (unreachable, password, database)
        instead of a pool time-out."""
        try:
            with psycopg.connect(self.info, autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise translate(exc, self.info, "connecting") from None

    @contextmanager
    def connection(self, doing: str = "running a query") -> Iterator[psycopg.Connection[Any]]:
        try:
            with self.pool.connection() as conn:
                yield conn
        except (psycopg.Error, PoolTimeout) as exc:
            error = translate(exc, self.info, doing)
            if error is exc:
                raise
            raise error from None

    def close(self) -> None:
        self.pool.close()

    def __repr__(self) -> str:
        return f"Database({self.where!r})"


_lock = threading.Lock()
_open: dict[tuple[int, str], tuple[Database, int]] = {}


def acquire(info: str, *, min_size: int, max_size: int, timeout: float) -> Database:
    """The process's pool for ``info`` (created on first use; shared, reference counted)."""
    key = (os.getpid(), info)
    with _lock:
        if key in _open:
            db, refs = _open[key]
            _open[key] = (db, refs + 1)
            return db
        db = Database(info, min_size=min_size, max_size=max_size, timeout=timeout)
        _open[key] = (db, 1)
        return db


def release(db: Database) -> None:
    key = (os.getpid(), db.info)
    with _lock:
        held = _open.get(key)
        if held is None or held[0] is not db:
            return
        refs = held[1] - 1
        if refs:
            _open[key] = (db, refs)
            return
        del _open[key]
    db.close()


class GrowthAnalyzer:
    """Says when to ``VACUUM (ANALYZE)`` tables this process writes many rows into: each time its
    writes double (from ``floor`` rows), so an import of ``n`` rows in chunks analyzes about
    ``log2(n / floor)`` times, not once per chunk, and the planner never plans a search of a
    table it still believes empty."""

    def __init__(self, floor: int = 1000) -> None:
        self.written = 0
        self.due = floor
        self._lock = threading.Lock()

    def wrote(self, rows: int) -> bool:
        with self._lock:
            self.written += rows
            if self.written < self.due:
                return False
            self.due = 2 * self.written
            return True


def without_flush_wait(conn: psycopg.Connection[Any]) -> None:
    """The transaction open on ``conn`` commits without waiting for its WAL flush
    (``synchronous_commit = off`` for it alone; the session keeps its setting). For writes the
    store recovers from losing in a server crash; see :mod:`lightmem_postgres.records`."""
    conn.execute("SET LOCAL synchronous_commit = off")


# -- schema versions -----------------------------------------------------------------------------


def ensure_meta(conn: psycopg.Connection[Any], schema: str) -> None:
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.lightmem_meta "
            "(key text PRIMARY KEY, value text NOT NULL)"
        ).format(sql.Identifier(schema))
    )


def get_meta(conn: psycopg.Connection[Any], schema: str, key: str) -> str | None:
    row = conn.execute(
        sql.SQL("SELECT value FROM {}.lightmem_meta WHERE key = %s").format(sql.Identifier(schema)),
        (key,),
    ).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: psycopg.Connection[Any], schema: str, key: str, value: str) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.lightmem_meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        ).format(sql.Identifier(schema)),
        (key, value),
    )


def lock_schema(conn: psycopg.Connection[Any], schema: str) -> None:
    """Serialise schema changes of one namespace across processes (until the transaction ends)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"lightmem:{schema}",))


def migrate(
    conn: psycopg.Connection[Any],
    schema: str,
    key: str,
    migrations: list[sql.Composable],
    *,
    what: str,
    upto: int | None = None,
) -> int:
    """Bring the component ``key`` of ``schema`` to ``len(migrations)`` (or ``upto``), applying
    the missing steps in order, in one transaction with the other openers waiting. Refuses a
    version newer than ``len(migrations)``. Returns the version reached."""
    latest = len(migrations)
    target = latest if upto is None else upto
    with conn.transaction():
        ensure_schema_locked(conn, schema)
        found = get_meta(conn, schema, key)
        version = int(found) if found is not None else 0
        if version > latest:
            raise SchemaTooNewError(
                f"the {what} in schema {schema!r} has version {version}, newer than this "
                f"lightmem-postgres understands ({latest}); it was written by a newer release. "
                f"Upgrade lightmem-postgres (pip install -U lightmem-postgres) on this machine."
            )
        for step in range(version, target):
            conn.execute(migrations[step])
            set_meta(conn, schema, key, str(step + 1))
        return max(version, target)


def ensure_schema_locked(conn: psycopg.Connection[Any], schema: str) -> None:
    lock_schema(conn, schema)
    ensure_meta(conn, schema)


def ensure_vector_extension(conn: psycopg.Connection[Any], where: str) -> None:
    """``CREATE EXTENSION vector`` when missing; a typed error when this user may not."""
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
    if row is not None:
        return
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('lightmem:create-extension'))")
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.errors.FeatureNotSupported as exc:  # pragma: no cover - extension not built
        raise ExtensionMissingError(_no_vector(where, str(exc))) from None
    except psycopg.errors.UndefinedFile as exc:
        raise ExtensionMissingError(_no_vector(where, str(exc))) from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ExtensionMissingError(_no_vector(where, str(exc))) from None


def _no_vector(where: str, why: str) -> str:
    return (
        f"the pgvector extension is not installed in the database at {where}, and this user "
        f"cannot create it ({why.strip()}). Install pgvector on the server and run "
        f"'CREATE EXTENSION vector;' in that database as its owner or a superuser."
    )
