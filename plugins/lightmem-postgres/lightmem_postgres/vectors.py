"""``pgvector``: memory-entry vectors in a Postgres table, an HNSW index (cosine), the scope,
speaker, topic, time and excluded-id filters applied in SQL."""

from __future__ import annotations

import json
import math
import struct
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from lightmem_hookspecs import IndexRecord, SearchFilter
from psycopg import sql

from . import connection as pg
from .errors import SchemaTooNewError
from .options import PgVectorOptions
from .tables import (
    COPY_TYPES,
    PAYLOAD_NAMES,
    PAYLOAD_TYPES,
    last_per_id,
    payload_ddl,
    payload_values,
    where,
)

#: Version of the table layout this code writes (kept per table in ``lightmem_meta``).
TABLE_VERSION = 1


def vector_text(vector: Sequence[float] | Any, dimension: int) -> str:
    tolist = getattr(vector, "tolist", None)
    values = list(map(float, tolist() if callable(tolist) else vector))
    if len(values) != dimension:
        raise ValueError(f"pgvector: a vector of {len(values)} values, the index holds {dimension}")
    if not all(map(math.isfinite, values)):
        raise ValueError("pgvector: a vector with a NaN or infinite value")
    return "[" + ",".join(map(repr, values)) + "]"


def vector_binary(vector: Sequence[float] | Any, dimension: int) -> bytes:
    """pgvector's binary form (``vector_recv``): dimensions and a spare as 16-bit integers,
    then the values as big-endian 32-bit floats."""
    tolist = getattr(vector, "tolist", None)
    values = list(map(float, tolist() if callable(tolist) else vector))
    if len(values) != dimension:
        raise ValueError(f"pgvector: a vector of {len(values)} values, the index holds {dimension}")
    if not all(map(math.isfinite, values)):
        raise ValueError("pgvector: a vector with a NaN or infinite value")
    try:
        return struct.pack(f">hh{dimension}f", dimension, 0, *values)
    except OverflowError:
        raise ValueError("pgvector: a vector value beyond 32-bit float range") from None


class PgVectorRetriever:
    """One table per instance: ``id`` (any string), the payload columns, ``embedding``.

    Implements :class:`lightmem_hookspecs.EmbeddingRetriever` and the optional
    :class:`lightmem_hookspecs.VectorBulkLoad` (:meth:`bulk_upsert`) and
    :class:`lightmem_hookspecs.VectorRecreate` (:meth:`recreate`)."""

    def __init__(self, options: PgVectorOptions, *, table: str) -> None:
        self.options = options
        self.schema = options.schema
        self.table = table
        self._db: pg.Database | None = pg.acquire(
            options.conninfo(),
            min_size=options.pool_min_size,
            max_size=options.pool_max_size,
            timeout=options.connect_timeout,
        )
        self.model_name: str | None = None
        self.dimension: int | None = None
        self._t = sql.Identifier(self.schema, self.table)
        self._meta_key = f"pgvector:{self.table}"
        #: ``hnsw.ef_search`` as set on each pooled connection's session.
        self._ef: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        where = self._db.where if self._db else "closed"
        return f"PgVectorRetriever({where}, {self.schema}.{self.table})"

    @property
    def db(self) -> pg.Database:
        if self._db is None:
            raise RuntimeError("pgvector: the retriever is closed")
        return self._db

    # -- lifecycle ----------------------------------------------------------------------------

    def open(self, *, model_name: str, dimension: int) -> None:
        with self.db.connection("opening the vector table") as conn:
            pg.ensure_vector_extension(conn, self.db.where)
            with conn.transaction():
                pg.ensure_schema_locked(conn, self.schema)
                found = pg.get_meta(conn, self.schema, self._meta_key)
                if found is None:
                    self._create(conn, dimension)
                    meta = {"version": TABLE_VERSION, "model": model_name, "dimension": dimension}
                    pg.set_meta(conn, self.schema, self._meta_key, json.dumps(meta))
                else:
                    self._check(json.loads(found), model_name, dimension)
        self.model_name, self.dimension = model_name, dimension

    def _create(self, conn: Any, dimension: int) -> None:
        o = self.options
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {t} (id text PRIMARY KEY, {payload}, "
                "embedding vector({dim}) NOT NULL)"
            ).format(t=self._t, payload=payload_ddl(), dim=sql.Literal(int(dimension)))
        )
        conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {name} ON {t} USING hnsw (embedding vector_cosine_ops) "
                "WITH (m = {m}, ef_construction = {ef})"
            ).format(
                name=sql.Identifier(f"{self.table}_hnsw"[:63]),
                t=self._t,
                m=sql.Literal(o.hnsw_m),
                ef=sql.Literal(o.hnsw_ef_construction),
            )
        )
        for column in ("user_id", "run_id"):
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {t} ({c})").format(
                    name=sql.Identifier(f"{self.table}_{column}"[:63]),
                    t=self._t,
                    c=sql.Identifier(column),
                )
            )

    def _check(self, meta: dict[str, Any], model_name: str, dimension: int) -> None:
        where = f"{self.schema}.{self.table} on {self.db.where}"
        if int(meta.get("version", 1)) > TABLE_VERSION:
            raise SchemaTooNewError(
                f"the vector table {where} has layout version {meta['version']}, newer than "
                f"this lightmem-postgres understands ({TABLE_VERSION}). Upgrade lightmem-postgres."
            )
        if meta["model"] != model_name or int(meta["dimension"]) != dimension:
            raise ValueError(
                f"the vector table {where} holds vectors of {meta['model']!r} "
                f"({meta['dimension']} dimensions); the embedder is {model_name!r} ({dimension} "
                f"dimensions). Run 'lightmem reindex' to re-embed every entry with the new "
                f"embedder, or configure the embedder the table was built with."
            )

    def recreate(self, *, model_name: str, dimension: int) -> None:
        """Drop this table and open it empty for another model (``lightmem reindex``;
        :meth:`lightmem_hookspecs.VectorRecreate.recreate`)."""
        with self.db.connection("recreating the vector table") as conn, conn.transaction():
            pg.ensure_schema_locked(conn, self.schema)
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._t))
            conn.execute(
                sql.SQL("DELETE FROM {}.lightmem_meta WHERE key = %s").format(
                    sql.Identifier(self.schema)
                ),
                (self._meta_key,),
            )
        self.open(model_name=model_name, dimension=dimension)

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            pg.release(db)

    # -- writes -------------------------------------------------------------------------------

    def _dimension(self) -> int:
        if self.dimension is None:
            raise RuntimeError("pgvector: open() must be called before use")
        return self.dimension

    def upsert(self, records: Sequence[IndexRecord]) -> None:
        dim = self._dimension()
        rows = []
        for r in last_per_id(records):
            if r.vector is None:
                raise ValueError(f"pgvector: record {r.id!r} has no vector")
            rows.append([r.id, *payload_values(r.payload), vector_text(r.vector, dim)])
        if not rows:
            return
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in ("id", *PAYLOAD_NAMES))
        updates = sql.SQL(", ").join(
            sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c))
            for c in (*PAYLOAD_NAMES, "embedding")
        )
        arrays = sql.SQL(", ").join(
            sql.SQL("%s::{}[]").format(sql.SQL(kind)) for kind in ("text", *PAYLOAD_TYPES, "text")
        )
        names = sql.SQL(", ").join(sql.Identifier(c) for c in ("id", *PAYLOAD_NAMES, "e"))
        # One statement (atomic by itself) whatever the number of records: one round trip.
        statement = sql.SQL(
            "INSERT INTO {t} ({columns}, embedding) SELECT {columns}, e::vector "
            "FROM unnest({arrays}) AS r({names}) ON CONFLICT (id) DO UPDATE SET {updates}"
        ).format(t=self._t, columns=columns, arrays=arrays, names=names, updates=updates)
        with self.db.connection("writing vectors") as conn, conn.pipeline(), conn.transaction():
            # Lost in a server crash: the entries stay unmarked and are indexed again.
            pg.without_flush_wait(conn)
            conn.execute(statement, [list(column) for column in zip(*rows, strict=True)])

    def bulk_upsert(self, chunks: Iterable[Sequence[IndexRecord]]) -> int:
        """Write many records at once (an import). Into an empty table the rows are copied
        first and the HNSW index is built once afterwards (much faster than inserting into the
        graph row by row), in one transaction that holds the table against other writers
        until it commits; into a table with rows this is :meth:`upsert` per chunk. Returns the
        rows written (:meth:`lightmem_hookspecs.VectorBulkLoad.bulk_upsert`)."""
        dim = self._dimension()
        index = sql.Identifier(self.schema, f"{self.table}_hnsw"[:63])
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in ("id", *PAYLOAD_NAMES, "embedding"))
        written = 0
        with self.db.connection("loading vectors") as conn, conn.transaction():
            # Locked before the emptiness test, so no row arrives between it and the copy.
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(self._t))
            found = conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(self._t))
            empty = not found.fetchone()[0]
            if empty:
                conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(index))
                # Binary rows: the vector as pgvector's own binary form (no float text to
                # write here or to parse there).
                with conn.cursor().copy(
                    sql.SQL("COPY {t} ({columns}) FROM STDIN (FORMAT BINARY)").format(
                        t=self._t, columns=columns
                    )
                ) as copy:
                    copy.set_types(["text", *COPY_TYPES, "bytea"])
                    for chunk in chunks:
                        for r in last_per_id(chunk):
                            if r.vector is None:
                                raise ValueError(f"pgvector: record {r.id!r} has no vector")
                            copy.write_row(
                                [r.id, *payload_values(r.payload), vector_binary(r.vector, dim)]
                            )
                            written += 1
                # The graph built in memory (about 2 KB a row at 384 dimensions), by the
                # server's parallel maintenance workers.
                conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
                self._create(conn, dim)
        if not empty:
            for chunk in chunks:
                self.upsert(chunk)
                written += len(chunk)
        with self.db.connection("vacuuming vectors") as conn:
            # The planner's row counts, and the visibility map (the scope's rows counted from
            # its index alone): what autovacuum would do a minute later.
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(self._t))
        return written

    def delete(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self.db.connection("deleting vectors") as conn:
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(self._t), (list(set(ids)),)
            )

    # -- reads --------------------------------------------------------------------------------

    def count(self) -> int:
        with self.db.connection("counting vectors") as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self._t)).fetchone()
        return int(row[0]) if row else 0

    def search(
        self, vector: Sequence[float], *, limit: int, filter: SearchFilter | None = None
    ) -> list[tuple[str, float]]:
        query = vector_text(vector, self._dimension())
        if limit <= 0:
            return []
        clauses, named = where(filter, names="f")
        condition = sql.SQL(" AND ").join([sql.SQL("true"), *clauses])
        ef = min(max(self.options.ef_search, limit), 1000)
        scoped = filter is not None and any(
            v is not None for v in (filter.user_id, filter.agent_id, filter.run_id)
        )
        named.update(v=query, limit=limit, ef=str(ef))
        mode = self.options.scoped_search if scoped else "hnsw"
        with self.db.connection("searching vectors") as conn:
            if mode == "exact":
                statement = self._ranked(condition, exact=True)
            elif mode == "hnsw":
                statement = self._ranked(condition, exact=False)
            else:
                # By the scope's size, in one statement: the scope's rows counted up to the
                # bound, then exactly one of the two branches runs (a one-time condition).
                named["n"] = self.options.exact_below
                statement = sql.SQL(
                    "WITH n AS MATERIALIZED (SELECT count(*) AS c FROM "
                    "(SELECT 1 FROM {t} WHERE {c} LIMIT %(n)s + 1) AS x) "
                    "(SELECT * FROM ({exact}) AS e WHERE (SELECT c FROM n) <= %(n)s) "
                    "UNION ALL "
                    "(SELECT * FROM ({walk}) AS w WHERE (SELECT c FROM n) > %(n)s)"
                ).format(
                    t=self._t,
                    c=condition,
                    exact=self._ranked(condition, exact=True),
                    walk=self._ranked(condition, exact=False),
                )
            hits = self._run(conn, statement, named)
            if mode != "exact" and len(hits) < limit:
                # The HNSW walk keeps ef candidates before the filter: a narrow filter (or a
                # small, sparse graph) can leave fewer than limit. Then the rows the filter
                # admits are ranked exactly (found by the scope's index where it has one).
                hits = self._run(conn, self._ranked(condition, exact=True), named)
        return hits

    def _ranked(self, condition: sql.Composable, *, exact: bool) -> sql.Composed:
        # "+ 0" hides the distance from the planner's index matching: an exact, filtered scan.
        order = sql.SQL(
            "(embedding <=> %(v)s::vector) + 0" if exact else "embedding <=> %(v)s::vector"
        )
        return sql.SQL(
            "SELECT id, 1 - (embedding <=> %(v)s::vector) AS score FROM {t} WHERE {c} "
            "ORDER BY {order} LIMIT %(limit)s"
        ).format(t=self._t, c=condition, order=order)

    def _run(self, conn: Any, statement: sql.Composable, named: dict[str, Any]) -> list[Any]:
        # The walk's width is a setting of the connection's session, set when this connection
        # last had another (only HNSW scans read it): a search is one statement, no
        # transaction around it.
        if self._ef.get(conn) != named["ef"]:
            conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (named["ef"],))
            self._ef[conn] = named["ef"]
        rows = conn.execute(statement, named).fetchall()
        hits = [(str(r[0]), float(r[1])) for r in rows]
        hits.sort(key=lambda h: -h[1])
        return hits
