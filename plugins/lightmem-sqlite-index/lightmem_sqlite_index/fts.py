"""The ``sqlite-fts`` context retriever: SQLite FTS5, BM25 ranked by SQLite itself.

One SQLite file (WAL) holds ``docs`` (one row per record: its id and the payload fields a
:class:`~lightmem_hookspecs.SearchFilter` can test) and ``terms``, an FTS5 table whose rowid is
the ``docs`` rowid and whose one column holds the record's analysed terms, space-separated.
Every ``index`` or ``delete`` call is one transaction. FTS5 ranks with its built-in BM25
(``k1 = 1.2``, ``b = 0.75``): it scores every record that shares a term with the query, which
at 100 k records and common query words is tens of thousands of rows per search (see the
README for the measurements that made ``sqlite-bm25`` the default instead).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from lightmem_hookspecs import IndexRecord, SearchFilter

from .db import FILTER_COLUMNS, SQLiteFile, filter_fields, filter_sql, unique_last

SCHEMA_VERSION = "lightmem-sqlite-fts/1"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS docs (
    rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, {FILTER_COLUMNS}, payload TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS terms USING fts5(
    body, tokenize = "unicode61 remove_diacritics 0 categories 'L* N* Co M*'"
);
"""


def fts_query(terms: Sequence[str]) -> str:
    """``"a" OR "b"``: each analysed term as a quoted FTS5 string (repeats weigh twice, as BM25)."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


class SQLiteFTSRetriever:
    """A :class:`~lightmem_hookspecs.ContextRetriever` on an SQLite FTS5 file.

    ``analyzer`` turns text into terms, for records and queries alike.

    Also implements the optional :class:`~lightmem_hookspecs.TextReset` (:meth:`reset`) and
    :class:`~lightmem_hookspecs.IndexCompaction` (:meth:`compact`).
    """

    def __init__(self, path: str | os.PathLike[str], analyzer: Callable[[str], list[str]]) -> None:
        self.db = SQLiteFile(path, _SCHEMA, SCHEMA_VERSION)
        self.path = self.db.path
        self.analyzer = analyzer

    def index(self, records: Sequence[IndexRecord]) -> None:
        """Add records in one transaction; a record whose id is indexed already is replaced."""
        rows = [
            (
                r.id,
                " ".join(self.analyzer(r.text)),
                filter_fields(r.payload),
                json.dumps(dict(r.payload), default=str),
            )
            for r in unique_last(records)
        ]
        if not rows:
            return
        with self.db.write() as conn:
            self._remove(conn, [row[0] for row in rows])
            for record_id, body, fields, payload_json in rows:
                cur = conn.execute(
                    "INSERT INTO docs (id, user_id, agent_id, run_id, speaker, topic_id, "
                    "time_stamp, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (record_id, *fields, payload_json),
                )
                conn.execute("INSERT INTO terms (rowid, body) VALUES (?, ?)", (cur.lastrowid, body))

    def delete(self, ids: Sequence[str]) -> None:
        """Remove records by id in one transaction; unknown ids are ignored."""
        if ids:
            with self.db.write() as conn:
                self._remove(conn, list(dict.fromkeys(ids)))

    @staticmethod
    def _remove(conn, ids: list[str]) -> None:
        for record_id in ids:
            found = conn.execute("SELECT rowid FROM docs WHERE id = ?", (record_id,)).fetchone()
            if found is not None:
                conn.execute("DELETE FROM terms WHERE rowid = ?", (found[0],))
                conn.execute("DELETE FROM docs WHERE rowid = ?", (found[0],))

    def count(self) -> int:
        """The number of indexed records (the core compares it with its active entries)."""
        return int(self.db.reader().execute("SELECT count(*) FROM docs").fetchone()[0])

    def search(
        self, query: str, *, limit: int, filter: SearchFilter | None = None
    ) -> list[tuple[str, float]]:
        """``(id, score)`` of the best ``limit`` records sharing a term with ``query``.

        The score is FTS5's BM25 with its sign turned (higher is better); ties go by id.
        """
        if limit <= 0:
            return []
        terms = self.analyzer(query)
        if not terms:
            return []
        where, params = filter_sql(filter)
        sql = (
            "SELECT d.id, -bm25(terms) AS score FROM terms JOIN docs d ON d.rowid = terms.rowid "
            f"WHERE {' AND '.join(['terms MATCH ?', *where])} ORDER BY score DESC, d.id LIMIT ?"
        )
        rows = self.db.reader().execute(sql, (fts_query(terms), *params, limit)).fetchall()
        return [(record_id, float(score)) for record_id, score in rows]

    def compact(self) -> None:
        """Rewrite the file so deleted records leave no bytes behind (after an erase;
        :meth:`lightmem_hookspecs.IndexCompaction.compact`)."""
        self.db.compact(lambda conn: conn.execute("INSERT INTO terms(terms) VALUES('optimize')"))

    def reset(self) -> Path | None:
        """Empty the index for a rebuild (``lightmem reindex``); a damaged file is moved aside
        first and kept: returns where it went (``None``: the file was sound;
        :meth:`lightmem_hookspecs.TextReset.reset`)."""
        return self.db.reset()

    def close(self) -> None:
        """Close every connection; closing twice is harmless."""
        self.db.close()
