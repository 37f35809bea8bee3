"""The ``qdrant`` embedding retriever: one :class:`EmbeddingRetriever` over two engines."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from lightmem_hookspecs import IndexRecord, SearchFilter

from . import common
from .client import ClientEngine
from .common import Conditions
from .edge import EdgeEngine
from .options import QdrantOptions

#: Reverse id cache bound; point ids never change meaning (uuid5), so entries never go stale.
_ID_CACHE_LIMIT = 2_000_000


class QdrantRetriever:
    """A Qdrant collection of memory-entry vectors, scored by cosine similarity.

    ``options.resolved_engine()`` picks the engine: ``edge`` (embedded Qdrant Edge, the default
    for a local path) or ``client`` (qdrant-client: in memory, a qdrant-client folder, or a
    server). Entry ids map to point ids with :func:`~lightmem_qdrant.common.point_id`; the
    original id is kept in the payload field ``lightmem_id``.

    Also implements the optional :class:`~lightmem_hookspecs.VectorRecreate` (:meth:`recreate`)
    and :class:`~lightmem_hookspecs.IndexCompaction` (:meth:`compact`).
    """

    def __init__(self, options: QdrantOptions | None = None, *, memory_dir: str = ".") -> None:
        self.options = options or QdrantOptions()
        self.mode = self.options.mode()
        self.engine_name = self.options.resolved_engine()
        self.path: str | None = None
        if self.mode == "path":
            raw = self.options.path or os.path.join(memory_dir, "qdrant")
            self.path = os.path.abspath(os.path.expanduser(raw))
        self.model_name: str | None = None
        self.dimension: int | None = None
        self._engine: EdgeEngine | ClientEngine | None = None
        self._ids: dict[str, str] = {}
        self._ids_complete = False

    def __repr__(self) -> str:
        where = self.path or self.mode
        return (
            f"QdrantRetriever(collection={self.options.collection_name!r}, "
            f"engine={self.engine_name!r}, {where})"
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def open(self, *, model_name: str, dimension: int) -> None:
        """Create the collection, or check that it was built with this model and dimension."""
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension <= 0:
            raise ValueError(f"dimension must be a positive int, got {dimension!r}")
        expected = self.options.embedding_model_dims
        if expected is not None and expected != dimension:
            raise ValueError(
                f"embedding_retriever.configs.embedding_model_dims is {expected} but the text "
                f"embedder {model_name!r} produces {dimension}-dim vectors: set "
                f"embedding_model_dims to {dimension} or remove it"
            )
        if self._engine is not None:
            common.check_compatible(
                collection=self.options.collection_name,
                where=f"already opened by {self!r}",
                stored_model=self.model_name,
                stored_dimension=self.dimension,
                model_name=model_name,
                dimension=dimension,
            )
            return
        engine = self._make_engine()
        engine.attach(model_name, dimension)
        self._engine = engine
        self.model_name, self.dimension = model_name, dimension
        # A store only this instance can write (local path: locked; memory: private) that starts
        # empty has every id in the cache, so searches need not read payloads.
        self._ids.clear()
        self._ids_complete = self.mode != "server" and engine.count() == 0

    def _make_engine(self) -> EdgeEngine | ClientEngine:
        if self.engine_name == "edge":
            return EdgeEngine(self.options, self.path)
        return ClientEngine(self.options, self.mode, self.path)

    def close(self) -> None:
        """Flush and release the store (and its lock). Safe to call twice."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()

    def __enter__(self) -> QdrantRetriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _opened(self, action: str) -> EdgeEngine | ClientEngine:
        if self._engine is None:
            raise RuntimeError(
                f"{self!r}: call open(model_name=..., dimension=...) before {action}"
            )
        return self._engine

    # -- the protocol ----------------------------------------------------------------------------

    def upsert(self, records: Sequence[IndexRecord]) -> None:
        """Insert or replace records, ``batch_size`` points per engine call."""
        engine = self._opened("upsert")
        assert self.dimension is not None
        latest: dict[str, IndexRecord] = {}
        for record in records:
            latest[record.id] = record  # the last of duplicate ids wins, as in one big upsert
        items = list(latest.values())
        if not items:
            return
        size = self.options.batch_size
        store_text = self.options.store_text
        for start in range(0, len(items), size):
            points = []
            for record in items[start : start + size]:
                if record.vector is None:
                    raise ValueError(
                        f"record {record.id!r} has no vector: an embedding retriever needs "
                        f"IndexRecord.vector"
                    )
                vector = common.clean_vector(
                    record.vector, self.dimension, f"the vector of record {record.id!r}"
                )
                payload = common.clean_payload(
                    record.id, record.text, record.payload, store_text=store_text
                )
                points.append((common.point_id(record.id), vector, payload))
            engine.upsert(points)
            self._remember((str(pid), p[common.ID_FIELD]) for pid, _, p in points)
        engine.after_upserts()

    def search(
        self, vector: Sequence[float], *, limit: int, filter: SearchFilter | None = None
    ) -> list[tuple[str, float]]:
        """``(entry id, cosine similarity)`` pairs, best first, all passing ``filter``."""
        engine = self._opened("search")
        assert self.dimension is not None
        if limit <= 0:
            return []
        query = common.clean_vector(vector, self.dimension, "the query vector")
        hits = engine.search(query, limit, Conditions.from_filter(filter), not self._ids_complete)
        ids = self._ids
        if not self._ids_complete:
            self._remember((key, entry_id) for key, _, entry_id in hits if entry_id is not None)
        missing = [key for key, _, _ in hits if key not in ids]
        if missing:
            ids.update(engine.lookup(missing))
        return [(ids[key], float(score)) for key, score, _ in hits if key in ids]

    def _remember(self, pairs: Any) -> None:
        if len(self._ids) >= _ID_CACHE_LIMIT:
            self._ids.clear()
            self._ids_complete = False
        self._ids.update(pairs)

    def delete(self, ids: Sequence[str]) -> None:
        """Remove records by entry id; unknown ids are ignored."""
        engine = self._opened("delete")
        unique = list(dict.fromkeys(ids))
        if not unique:
            return
        points = [common.point_id(i) for i in unique]
        size = self.options.batch_size
        for start in range(0, len(points), size):
            engine.delete(points[start : start + size])

    def count(self) -> int:
        return self._opened("count").count()

    # -- beyond the protocol ---------------------------------------------------------------------

    def optimize(self) -> None:
        """Fold pending points into optimized segments now (edge engine; no-op otherwise)."""
        self._opened("optimize").optimize()

    def compact(self) -> None:
        """Rewrite the embedded store's files without the bytes of deleted points (after an
        erase); a Qdrant server reclaims them with its own optimizer
        (:meth:`lightmem_hookspecs.IndexCompaction.compact`)."""
        engine = self._opened("compact")
        compact = getattr(engine, "compact", None)
        if callable(compact):
            compact()

    def recreate(self, *, model_name: str, dimension: int) -> None:
        """Drop THIS collection and create it empty for another model (for ``reindex``).

        Never called implicitly. Other collections in the same path or server are untouched
        (:meth:`lightmem_hookspecs.VectorRecreate.recreate`).
        """
        engine, self._engine = self._engine or self._make_engine(), None
        engine.drop()
        self._engine = None
        self.open(model_name=model_name, dimension=dimension)

    @property
    def info(self) -> dict[str, Any]:
        """Where the collection lives and how it is searched (for ``lightmem stats``)."""
        return {
            "collection_name": self.options.collection_name,
            "engine": self.engine_name,
            "mode": self.mode,
            "path": self.path,
            "model_name": self.model_name,
            "dimension": self.dimension,
            **(self._engine.stats() if self._engine is not None else {}),
        }
