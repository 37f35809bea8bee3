"""``postgres-fts``: memory-entry texts in a Postgres table with a generated ``tsvector`` column
and a GIN index; a query matches entries sharing any of its words, ranked by ``ts_rank``."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from lightmem_hookspecs import IndexRecord, SearchFilter
from psycopg import sql

from . import connection as pg
from .errors import SchemaTooNewError
from .options import PostgresFTSOptions
from .tables import PAYLOAD_NAMES, last_per_id, payload_ddl, payload_values, where

TABLE_VERSION = 1
_WORD = re.compile(r"\w+")
#: ``ts_rank`` normalisation: divide by 1 + log(document length).
_NORMALIZATION = 1


def tsquery_text(query: str) -> str:
    """Any of the query's words: ``'w1' | 'w2' | ...`` (each normalised by the language)."""
    return " | ".join(f"'{w}'" for w in dict.fromkeys(_WORD.findall(query.lower())))


class PostgresFTSRetriever:
    """One table per instance: ``id``, ``text``, the payload columns, ``tsv`` (generated)."""

    def __init__(self, options: PostgresFTSOptions, *, table: str) -> None:
        self.options = options
        self.schema = options.schema
        self.table = table
        self._t = sql.Identifier(self.schema, self.table)
        self._meta_key = f"fts:{self.table}"
        self._db: pg.Database | None = pg.acquire(
            options.conninfo(),
            min_size=options.pool_min_size,
            max_size=options.pool_max_size,
            timeout=options.connect_timeout,
        )
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        where = self._db.where if self._db else "closed"
        return f"PostgresFTSRetriever({where}, {self.schema}.{self.table})"

    @property
    def db(self) -> pg.Database:
        if self._db is None:
            raise RuntimeError("postgres-fts: the retriever is closed")
        return self._db

    def _open(self) -> None:
        language = self.options.language
        with self.db.connection("opening the full-text table") as conn:
            known = conn.execute(
                "SELECT 1 FROM pg_ts_config WHERE cfgname = %s", (language,)
            ).fetchone()
            if known is None:
                names = [r[0] for r in conn.execute("SELECT cfgname FROM pg_ts_config ORDER BY 1")]
                raise ValueError(
                    f"postgres-fts: language {language!r} is not a text search configuration of "
                    f"this server; choose one of {', '.join(names)}"
                )
            with conn.transaction():
                pg.ensure_schema_locked(conn, self.schema)
                found = pg.get_meta(conn, self.schema, self._meta_key)
                if found is None:
                    self._create(conn)
                    meta = {"version": TABLE_VERSION, "language": language}
                    pg.set_meta(conn, self.schema, self._meta_key, json.dumps(meta))
                else:
                    self._check(json.loads(found))
                    self._scope_index(conn)  # tables made before the index existed

    def _create(self, conn: Any) -> None:
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {t} (id text PRIMARY KEY, text text NOT NULL, "
                "{payload}, tsv tsvector GENERATED ALWAYS AS "
                "(to_tsvector({language}::regconfig, text)) STORED)"
            ).format(t=self._t, payload=payload_ddl(), language=sql.Literal(self.options.language))
        )
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {t} USING gin (tsv)").format(
                name=sql.Identifier(f"{self.table}_gin"[:63]), t=self._t
            )
        )
        self._scope_index(conn)

    def _scope_index(self, conn: Any) -> None:
        """A scope's rows by their user: a filtered search ANDs it with the GIN index."""
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {t} (user_id)").format(
                name=sql.Identifier(f"{self.table}_user"[:63]), t=self._t
            )
        )

    def _check(self, meta: dict[str, Any]) -> None:
        where = f"{self.schema}.{self.table} on {self.db.where}"
        if int(meta.get("version", 1)) > TABLE_VERSION:
            raise SchemaTooNewError(
                f"the full-text table {where} has layout version {meta['version']}, newer than "
                f"this lightmem-postgres understands ({TABLE_VERSION}). Upgrade lightmem-postgres."
            )
        if meta.get("language") != self.options.language:
            raise ValueError(
                f"postgres-fts: the table {where} was built with language "
                f"{meta.get('language')!r}, not {self.options.language!r}; configure "
                f"{meta.get('language')!r} or give this index another table"
            )

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            pg.release(db)

    # -- writes -------------------------------------------------------------------------------

    def index(self, records: Sequence[IndexRecord]) -> None:
        rows = [[r.id, r.text, *payload_values(r.payload)] for r in last_per_id(records)]
        if not rows:
            return
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in ("id", "text", *PAYLOAD_NAMES))
        updates = sql.SQL(", ").join(
            sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c))
            for c in ("text", *PAYLOAD_NAMES)
        )
        marks = sql.SQL(", ").join(sql.Placeholder() * (len(PAYLOAD_NAMES) + 2))
        statement = sql.SQL(
            "INSERT INTO {t} ({columns}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {updates}"
        ).format(t=self._t, columns=columns, marks=marks, updates=updates)
        with (
            self.db.connection("indexing texts") as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            cur.executemany(statement, rows)

    def delete(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self.db.connection("deleting texts") as conn:
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(self._t), (list(set(ids)),)
            )

    # -- reads --------------------------------------------------------------------------------

    def count(self) -> int:
        with self.db.connection("counting texts") as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self._t)).fetchone()
        return int(row[0]) if row else 0

    def search(
        self, query: str, *, limit: int, filter: SearchFilter | None = None
    ) -> list[tuple[str, float]]:
        text = tsquery_text(query)
        if not text or limit <= 0:
            return []
        clauses, params = where(filter)
        extra = sql.SQL("").join(sql.SQL(" AND ") + c for c in clauses)
        statement = sql.SQL(
            "SELECT id, ts_rank(tsv, q, {norm}) AS score "
            "FROM {t}, to_tsquery({language}::regconfig, %s) AS q "
            "WHERE tsv @@ q{extra} ORDER BY score DESC, id LIMIT %s"
        ).format(
            t=self._t,
            language=sql.Literal(self.options.language),
            norm=sql.Literal(_NORMALIZATION),
            extra=extra,
        )
        with self.db.connection("searching texts") as conn:
            rows = conn.execute(statement, [text, *params, limit]).fetchall()
        return [(str(r[0]), float(r[1])) for r in rows]
