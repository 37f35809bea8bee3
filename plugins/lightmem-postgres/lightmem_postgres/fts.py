"""``postgres-fts``: memory-entry texts in a Postgres table with a generated ``tsvector`` column
and a GIN index; a query matches entries sharing any of its words, ranked by BM25.

BM25 needs each term's document frequency: a table beside the texts (``<table>_terms``) keeps,
per user, each lexeme's document count, and per user the number of documents and their total
length (the row with the empty term). It changes in the transaction that changes the texts,
under a per-user advisory lock (writers of one user wait for each other, other users' writers
do not). A search is one statement: the query's lexemes, their frequencies in the searched
user's documents (all users' when the filter names none), the candidate documents, and each
candidate's Lucene BM25 score (``idf = ln(1 + (N - n + 0.5) / (n + 0.5))``, ``k1``, ``b``; the
document length is its number of distinct lexemes).

Bounded work: a user with few documents (``scan_below``) is searched through the user index
(the GIN posting lists of common words hold every user's documents); a larger one through the
GIN index. Query terms are taken rarest first while their summed frequency stays under
``max_candidates``: a word found in most documents adds candidates, not ranking.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from lightmem_hookspecs import IndexRecord, SearchFilter
from psycopg import sql

from . import connection as pg
from .errors import SchemaTooNewError
from .options import PostgresFTSOptions
from .tables import (
    COPY_TYPES,
    PAYLOAD_NAMES,
    PAYLOAD_TYPES,
    last_per_id,
    payload_ddl,
    payload_values,
    where,
)

#: 2: the per-user term statistics table (BM25).
TABLE_VERSION = 2

_WORD = re.compile(r"\w+")


def has_words(query: str) -> bool:
    return _WORD.search(query) is not None


class PostgresFTSRetriever:
    """One table per instance: ``id``, ``text``, the payload columns, ``tsv`` (generated); its
    term statistics in ``<table>_terms``.

    Implements :class:`lightmem_hookspecs.ContextRetriever` and the optional
    :class:`lightmem_hookspecs.TextBulkLoad` (:meth:`bulk_index`)."""

    def __init__(self, options: PostgresFTSOptions, *, table: str) -> None:
        self.options = options
        self.schema = options.schema
        self.table = table
        self._t = sql.Identifier(self.schema, self.table)
        self._terms = sql.Identifier(self.schema, f"{self.table}_terms"[:63])
        self._meta_key = f"fts:{self.table}"
        self._growth = pg.GrowthAnalyzer()
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
                    self._terms_table(conn)
                else:
                    meta = json.loads(found)
                    self._check(meta)
                    self._scope_index(conn)  # tables made before the index existed
                    if int(meta.get("version", 1)) < 2:
                        self._terms_table(conn)
                        self._count_terms(conn)
                meta = {"version": TABLE_VERSION, "language": language}
                pg.set_meta(conn, self.schema, self._meta_key, json.dumps(meta))

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
        """A scope's rows by their user: a small user's search reads them through it."""
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {t} (user_id)").format(
                name=sql.Identifier(f"{self.table}_user"[:63]), t=self._t
            )
        )

    def _terms_table(self, conn: Any) -> None:
        """Per user (``''`` for none): each lexeme's document count (``df``); the empty term's
        row holds the number of documents (``df``) and their summed length (``len``)."""
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {s} (user_key text NOT NULL, term text NOT NULL, "
                "df bigint NOT NULL, len bigint NOT NULL DEFAULT 0, PRIMARY KEY (user_key, term))"
            ).format(s=self._terms)
        )

    def _count_terms(self, conn: Any) -> None:
        """Fill the statistics from the texts (a table from before they were kept)."""
        conn.execute(sql.SQL("DELETE FROM {}").format(self._terms))
        conn.execute(self._tally(sql.SQL("SELECT user_id, tsv FROM {t}").format(t=self._t), 1))

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

    def _tally(self, rows: sql.Composable, sign: int, *, source: str = "src") -> sql.Composed:
        """Add (``sign`` 1) or take away (-1) the documents of ``rows`` (``user_id, tsv``) in
        the statistics; ``rows`` is a query, or the name of a CTE already written when
        ``source`` is that name."""
        return sql.SQL(
            "WITH {src} AS ({rows}) "
            "INSERT INTO {s} AS s (user_key, term, df, len) "
            "SELECT k, term, sum(df), sum(len) FROM ("
            " SELECT coalesce(user_id, '') AS k, u.lexeme AS term, {sign} AS df, 0 AS len "
            " FROM {src}, unnest({src}.tsv) AS u"
            " UNION ALL"
            " SELECT coalesce(user_id, ''), '', {sign}, {sign} * length(tsv) FROM {src}"
            ") d GROUP BY k, term ORDER BY k, term "
            "ON CONFLICT (user_key, term) DO UPDATE SET df = s.df + excluded.df, "
            "len = s.len + excluded.len"
        ).format(src=sql.Identifier(source), rows=rows, s=self._terms, sign=sql.Literal(int(sign)))

    def _lock_users(self, conn: Any, users: list[str | None]) -> None:
        """The statistics rows of these users are this transaction's until it ends (locks
        taken in one order, so two writers never wait for each other in a cycle)."""
        keys = sorted({f"lightmem-fts:{self.schema}.{self.table}:{u or ''}" for u in users})
        conn.execute(
            "SELECT count(pg_advisory_xact_lock(h)) FROM "
            "(SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest(%s::text[]) AS k "
            "ORDER BY 1) AS l",
            (keys,),
        )

    def _remove(self, conn: Any, ids: list[str]) -> None:
        gone = sql.SQL("DELETE FROM {t} WHERE id = ANY(%s) RETURNING user_id, tsv").format(
            t=self._t
        )
        conn.execute(self._tally(gone, -1), (ids,))

    def index(self, records: Sequence[IndexRecord]) -> None:
        records = last_per_id(records)
        if not records:
            return
        ids = [r.id for r in records]
        values = [[r.id for r in records], [r.text for r in records]]
        payloads = [payload_values(r.payload) for r in records]
        values += [list(column) for column in zip(*payloads, strict=True)]
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in ("id", "text", *PAYLOAD_NAMES))
        arrays = sql.SQL(", ").join(
            sql.SQL("%s::{}[]").format(sql.SQL(kind)) for kind in ("text", "text", *PAYLOAD_TYPES)
        )
        insert = sql.SQL(
            "INSERT INTO {t} ({columns}) SELECT * FROM unnest({arrays}) RETURNING user_id, tsv"
        ).format(t=self._t, columns=columns, arrays=arrays)
        users = [r.payload.get("user_id") for r in records]
        with self.db.connection("indexing texts") as conn:
            # Users of the rows replaced: read first, so their statistics are locked too.
            before = conn.execute(
                sql.SQL("SELECT DISTINCT user_id FROM {t} WHERE id = ANY(%s)").format(t=self._t),
                (ids,),
            ).fetchall()
            with conn.pipeline(), conn.transaction():
                # Lost in a server crash: the entries stay unmarked and are indexed again.
                pg.without_flush_wait(conn)
                self._lock_users(conn, [*users, *(r[0] for r in before)])
                self._remove(conn, ids)
                conn.execute(self._tally(insert, 1, source="new"), values)
            if self._growth.wrote(len(records)):  # row counts and visibility after growth
                conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(self._t))
                conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(self._terms))

    def bulk_index(self, chunks: Iterable[Sequence[IndexRecord]]) -> int:
        """Index many records at once (an import). Into an empty table the rows are copied
        with its indexes dropped, the GIN and user indexes built once afterwards and the term
        statistics counted in one statement, in one transaction (the table held against
        other writers until it commits: they find it empty or loaded, never half loaded);
        into a table with rows this is :meth:`index` per chunk. Returns the rows written
        (:meth:`lightmem_hookspecs.TextBulkLoad.bulk_index`)."""
        indexes = (
            (f"{self.table}_gin"[:63], sql.SQL("USING gin (tsv)")),
            (f"{self.table}_user"[:63], sql.SQL("(user_id)")),
        )
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in ("id", "text", *PAYLOAD_NAMES))
        written = 0
        with self.db.connection("loading texts") as conn, conn.transaction():
            # Locked before the emptiness test, so no row arrives between it and the copy.
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(self._t))
            found = conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(self._t))
            empty = not found.fetchone()[0]
            if empty:
                for name, _ in indexes:
                    conn.execute(
                        sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(self.schema, name))
                    )
                with conn.cursor().copy(
                    sql.SQL("COPY {t} ({columns}) FROM STDIN (FORMAT BINARY)").format(
                        t=self._t, columns=columns
                    )
                ) as copy:
                    copy.set_types(["text", "text", *COPY_TYPES])
                    for chunk in chunks:
                        for r in last_per_id(chunk):
                            copy.write_row([r.id, r.text, *payload_values(r.payload)])
                            written += 1
                conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
                conn.execute("SET LOCAL work_mem = '256MB'")  # the statistics' aggregation
                for name, how in indexes:
                    conn.execute(
                        sql.SQL("CREATE INDEX {name} ON {t} {how}").format(
                            name=sql.Identifier(name), t=self._t, how=how
                        )
                    )
                conn.execute(sql.SQL("DELETE FROM {}").format(self._terms))
                conn.execute(self._tally(sql.SQL("SELECT user_id, tsv FROM {}").format(self._t), 1))
        if not empty:
            for chunk in chunks:
                self.index(chunk)
                written += len(chunk)
        with self.db.connection("vacuuming texts") as conn:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(self._t))
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(self._terms))
        return written

    def delete(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        unique = list(set(ids))
        with self.db.connection("deleting texts") as conn:
            users = conn.execute(
                sql.SQL("SELECT DISTINCT user_id FROM {t} WHERE id = ANY(%s)").format(t=self._t),
                (unique,),
            ).fetchall()
            if not users:
                return
            with conn.pipeline(), conn.transaction():
                self._lock_users(conn, [r[0] for r in users])
                self._remove(conn, unique)

    # -- reads --------------------------------------------------------------------------------

    def count(self) -> int:
        with self.db.connection("counting texts") as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self._t)).fetchone()
        return int(row[0]) if row else 0

    def search(
        self, query: str, *, limit: int, filter: SearchFilter | None = None
    ) -> list[tuple[str, float]]:
        if limit <= 0 or not has_words(query):
            return []
        clauses, named = where(filter, names="f")
        extra = sql.SQL("").join(sql.SQL(" AND ") + c for c in clauses)
        user = None if filter is None or filter.user_id is None else str(filter.user_id)
        of_user = sql.SQL(" AND user_key = %(user)s" if user is not None else "")
        o = self.options
        statement = sql.SQL(
            # the query's lexemes (stemmed, stop words out) and how often each is said
            "WITH qt AS MATERIALIZED (SELECT lexeme AS term, "
            " coalesce(array_length(positions, 1), 1) AS rep "
            " FROM unnest(to_tsvector({language}::regconfig, %(query)s))), "
            # the documents searched: how many, their summed length
            "n AS MATERIALIZED (SELECT greatest(coalesce(sum(df), 0), 0) AS docs, "
            " greatest(coalesce(sum(len), 0), 0) AS len FROM {s} WHERE term = ''{of_user}), "
            # each term's document frequency there; the rarest terms while under the bound
            "st AS MATERIALIZED (SELECT qt.term, qt.rep, sum(s.df) AS df FROM qt "
            " JOIN {s} AS s ON s.term = qt.term{of_user} GROUP BY qt.term, qt.rep "
            " HAVING sum(s.df) > 0), "
            "kept AS MATERIALIZED (SELECT term, rep, "
            " ln(1 + (n.docs - df + 0.5)::float8 / (df + 0.5)) AS idf FROM "
            " (SELECT *, sum(df) OVER (ORDER BY df, term) - df AS before FROM st) AS x, n "
            " WHERE before = 0 OR before + df <= %(cap)s), "
            "q AS MATERIALIZED (SELECT string_agg(quote_literal(term), ' | ')::tsquery AS q, "
            " array_agg(term) AS terms FROM kept), "
            # candidates: by the user's index when the user has few documents, else by GIN
            # (each branch runs only when its one-time condition holds)
            "hits AS ("
            " SELECT id, tsv FROM {t} WHERE (SELECT docs FROM n) <= %(scan)s "
            "  AND ts_match_vq(tsv, (SELECT q FROM q)){extra}"
            " UNION ALL "
            " SELECT id, tsv FROM {t} WHERE (SELECT docs FROM n) > %(scan)s "
            "  AND tsv @@ (SELECT q FROM q){extra}) "
            "SELECT h.id, sum(k.rep * k.idf * u.tf * (%(k1)s + 1) / (u.tf + %(k1)s * "
            " (1 - %(b)s + %(b)s * length(h.tsv) / (n.len::float8 / greatest(n.docs, 1))))) "
            " AS score "
            # a candidate's query terms: marked (weight A), the others dropped, then unnested
            "FROM hits AS h CROSS JOIN LATERAL "
            " (SELECT lexeme, coalesce(array_length(positions, 1), 1)::float8 AS tf FROM "
            "  unnest(ts_filter(setweight(h.tsv, 'A', (SELECT terms FROM q)), '{{a}}'))) AS u "
            "JOIN kept AS k ON k.term = u.lexeme CROSS JOIN n "
            "GROUP BY h.id ORDER BY score DESC, h.id LIMIT %(limit)s"
        ).format(
            t=self._t,
            s=self._terms,
            language=sql.Literal(o.language),
            of_user=of_user,
            extra=extra,
        )
        named.update(
            query=query,
            user=user,
            cap=o.max_candidates,
            scan=o.scan_below,
            k1=float(o.k1),
            b=float(o.b),
            limit=limit,
        )
        with self.db.connection("searching texts") as conn:
            rows = conn.execute(statement, named).fetchall()
        return [(str(r[0]), float(r[1])) for r in rows]
