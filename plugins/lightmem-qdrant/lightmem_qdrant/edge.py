"""The embedded engine: a Qdrant Edge shard in a directory (Rust, in process, durable WAL).

Vectors are stored as float32 with an int8 scalar-quantized copy; a search scans the quantized
copy (SIMD), then rescores ``oversampling x limit`` candidates with the float vectors, so scores
are exact cosines. New points land in an appendable segment that is scanned exactly; once
``optimize_threshold`` points wait there, the optimizer folds them into a quantized segment.
Payload fields used by :class:`~lightmem_hookspecs.SearchFilter` carry payload indexes, so
filters run inside the engine.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from . import common
from .common import Conditions

if TYPE_CHECKING:
    from .options import QdrantOptions

log = logging.getLogger(__name__)

_FLOAT32_BYTES = 4
#: Up to this many ``exclude_ids`` are dropped after the search rather than inside it.
_POST_EXCLUDE_MAX = 256
#: A filter at least this fraction of the points pass is applied to a short unfiltered list.
_BROAD_FILTER = 0.7


class EdgeEngine:
    """One collection = one Edge shard at ``<root>/edge/<collection_name>``."""

    name = "edge"

    def __init__(self, options: QdrantOptions, root: str | None) -> None:
        self.options = options
        self.temporary = root is None
        self.root = root or tempfile.mkdtemp(prefix="lightmem-qdrant-", dir=_ram_dir())
        base = Path(self.root) / "edge"
        self.shard_dir = base / options.collection_name
        self.meta_file = base / f"{options.collection_name}.lightmem.json"
        self.shard: Any = None
        self._qe: Any = None
        self._params: Any = None
        self._optimize_floor = 0
        self._claimed = False

    @property
    def where(self) -> str:
        return "in a temporary directory" if self.temporary else f"at {self.shard_dir}"

    # -- lifecycle -------------------------------------------------------------------------------

    def attach(self, model_name: str, dimension: int) -> None:
        import qdrant_edge as qe

        self._qe = qe
        stored = self._read_meta()
        if stored is not None:
            common.check_compatible(
                collection=self.options.collection_name,
                where=self.where,
                stored_model=stored.get(common.META_MODEL),
                stored_dimension=stored.get(common.META_DIMENSION),
                model_name=model_name,
                dimension=dimension,
            )
        common.claim(str(self.shard_dir), f"engine edge, collection {self.options.collection_name}")
        self._claimed = True
        try:
            self.shard = self._open_shard(dimension, model_name)
            self._ensure_payload_indexes()
            if stored is None:
                self._write_meta(common.describe(model_name, dimension))
            self._params = self._search_params()
            self._maybe_optimize()
        except BaseException:
            self.close()
            raise

    def _config(self, dimension: int) -> Any:
        qe, o = self._qe, self.options
        quantization = None
        if o.quantization == "int8":
            quantization = qe.ScalarQuantizationConfig(qe.ScalarType.Int8, always_ram=True)
        # m=0 builds no graph: every search scans the (quantized) vectors, which keeps filtered
        # searches exact and costs one quantization pass per optimization, not an HNSW build.
        hnsw = qe.HnswIndexConfig(
            m=o.hnsw_m,
            ef_construct=o.hnsw_ef_construct,
            full_scan_threshold=10_000 if o.hnsw_m else 2**31 - 1,
        )
        threshold_kb = max(1, o.optimize_threshold * dimension * _FLOAT32_BYTES // 1024)
        # Without a cap the optimizer merges every new segment into one holding all points, so
        # each optimization rewrote the whole collection and a fill slowed down as it grew.
        segment_kb = max(threshold_kb, o.max_segment_points * dimension * _FLOAT32_BYTES // 1024)
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine),
            hnsw_config=hnsw,
            quantization_config=quantization,
            optimizers=qe.EdgeOptimizersConfig(
                indexing_threshold=threshold_kb, max_segment_size=segment_kb
            ),
        )

    def _open_shard(self, dimension: int, model_name: str) -> Any:
        qe = self._qe
        config = self._config(dimension)
        existing = (self.shard_dir / "edge_config.json").exists()
        try:
            if existing:
                return qe.EdgeShard.load(str(self.shard_dir), config)
            self.shard_dir.mkdir(parents=True, exist_ok=True)
            return qe.EdgeShard.create(str(self.shard_dir), config)
        except Exception as exc:
            text = str(exc)
            if "WouldBlock" in text or "temporarily unavailable" in text:
                raise common.locked_error(str(self.shard_dir)) from None
            if existing and "ncompatible" in text:
                common.check_compatible(
                    collection=self.options.collection_name,
                    where=self.where,
                    stored_model=None,
                    stored_dimension=_stored_size(self.shard_dir),
                    model_name=model_name,
                    dimension=dimension,
                )
            raise RuntimeError(f"cannot open the qdrant edge store {self.where}: {text}") from exc

    def _ensure_payload_indexes(self) -> None:
        """Index the filterable payload fields (without an index Edge reads every point's
        payload from disk to filter: ~30 ms at 9 000 points instead of 0.2 ms)."""
        qe = self._qe
        present = set(self.shard.info().payload_schema)
        wanted = [
            *((f, qe.PayloadSchemaType.Keyword) for f in common.KEYWORD_FIELDS),
            *((f, qe.PayloadSchemaType.Integer) for f in common.INTEGER_FIELDS),
            *((f, qe.PayloadSchemaType.Float) for f in common.FLOAT_FIELDS),
        ]
        for field, schema in wanted:
            if field not in present:
                self.shard.update(qe.UpdateOperation.create_field_index(field, schema))

    def _search_params(self) -> Any:
        qe, o = self._qe, self.options
        quantization = None
        if o.quantization != "none":
            quantization = qe.QuantizationSearchParams(rescore=True, oversampling=o.oversampling)
        return qe.SearchParams(hnsw_ef=o.hnsw_ef, quantization=quantization)

    def _read_meta(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.meta_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RuntimeError(
                f"cannot read {self.meta_file} (the model this collection was built with): "
                f"{exc}. Restore the file, or use another collection_name/path"
            ) from exc

    def _write_meta(self, meta: dict[str, Any]) -> None:
        self.meta_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.meta_file.with_name(self.meta_file.name + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.meta_file)

    def close(self) -> None:
        shard, self.shard = self.shard, None
        if shard is not None:
            try:
                shard.flush()
            finally:
                shard.close()
        if self._claimed:
            common.release(str(self.shard_dir))
            self._claimed = False
        if self.temporary:
            shutil.rmtree(self.root, ignore_errors=True)

    def drop(self) -> None:
        """Delete this collection's shard and description (nothing else under ``root``).

        Opens the shard first when it is not open, so a store another process holds is refused
        (lock error) instead of being deleted under it.
        """
        if self.shard is None and (self.shard_dir / "edge_config.json").exists():
            import qdrant_edge as qe

            common.claim(str(self.shard_dir), "dropping the collection")
            self._claimed = True
            try:
                self.shard = qe.EdgeShard.load(str(self.shard_dir))
            except Exception as exc:
                self.close()
                if "WouldBlock" in str(exc) or "temporarily unavailable" in str(exc):
                    raise common.locked_error(str(self.shard_dir)) from None
                raise RuntimeError(
                    f"cannot open the qdrant edge store {self.where}: {exc}"
                ) from exc
        self.close()
        shutil.rmtree(self.shard_dir, ignore_errors=True)
        self.meta_file.unlink(missing_ok=True)

    # -- data ------------------------------------------------------------------------------------

    def upsert(self, points: list[tuple[uuid.UUID, list[float], dict[str, Any]]]) -> None:
        qe = self._qe
        batch = [
            qe.Point(id=pid, vector=vector, payload=payload) for pid, vector, payload in points
        ]
        self.shard.update(qe.UpdateOperation.upsert_points(batch))

    def after_upserts(self) -> None:
        self._maybe_optimize()

    def _maybe_optimize(self) -> None:
        info = self.shard.info()
        pending = info.points_count - info.indexed_vectors_count
        if pending >= max(self.options.optimize_threshold, self._optimize_floor):
            self.optimize()
            info = self.shard.info()
            pending = info.points_count - info.indexed_vectors_count
            # The optimizer may decline (e.g. most pending points were deleted): wait for
            # another threshold's worth before asking again.
            self._optimize_floor = pending + self.options.optimize_threshold

    def optimize(self) -> None:
        log.info("qdrant edge: optimizing %s", self.shard_dir)
        self.shard.optimize()
        # Edge deletes the segments an optimization replaced only at the next flush; until then
        # they stay on disk and memory-mapped (at 100 k entries: 2.6 GB of RSS instead of ~1).
        self.shard.flush()

    def delete(self, ids: list[uuid.UUID]) -> None:
        self.shard.update(self._qe.UpdateOperation.delete_points(ids))

    def compact(self) -> None:
        """Rebuild the shard from its live points, so that no byte of a deleted point stays in
        its segments or its write-ahead log (after an erase). The new shard is built beside
        the old one and swapped in; a crash before the swap leaves the old one whole."""
        qe = self._qe
        meta = self._read_meta() or {}
        dimension = int(meta.get(common.META_DIMENSION) or self._dimension())
        records: list[Any] = []
        offset = None
        while True:
            page, offset = self.shard.scroll(
                qe.ScrollRequest(offset=offset, limit=1000, with_payload=True, with_vector=True)
            )
            records += page
            if offset is None:
                break
        fresh_dir = self.shard_dir.with_name(self.shard_dir.name + ".compacting")
        shutil.rmtree(fresh_dir, ignore_errors=True)
        fresh_dir.mkdir(parents=True)
        fresh = qe.EdgeShard.create(str(fresh_dir), self._config(dimension))
        try:
            for start in range(0, len(records), 500):
                batch = [
                    qe.Point(id=r.id, vector=list(r.vector), payload=dict(r.payload or {}))
                    for r in records[start : start + 500]
                ]
                fresh.update(qe.UpdateOperation.upsert_points(batch))
            fresh.optimize()
            fresh.flush()
        finally:
            fresh.close()
        old, self.shard = self.shard, None
        old.close()
        stale = self.shard_dir.with_name(self.shard_dir.name + ".stale")
        shutil.rmtree(stale, ignore_errors=True)
        os.replace(self.shard_dir, stale)
        os.replace(fresh_dir, self.shard_dir)
        shutil.rmtree(stale, ignore_errors=True)
        self.shard = qe.EdgeShard.load(str(self.shard_dir), self._config(dimension))
        self._ensure_payload_indexes()

    def _dimension(self) -> int:
        size = _stored_size(self.shard_dir)
        if size is None:
            raise RuntimeError(f"cannot tell the vector size of the qdrant edge store {self.where}")
        return size

    def count(self) -> int:
        return int(self.shard.count(self._qe.CountRequest(exact=True)))

    def stats(self) -> dict[str, Any]:
        info = self.shard.info()
        return {
            "points": info.points_count,
            "optimized_points": info.indexed_vectors_count,
            "segments": info.segments_count,
        }

    def search(
        self, vector: list[float], limit: int, conditions: Conditions | None, with_ids: bool
    ) -> list[tuple[str, float, str | None]]:
        excluded: set[str] = set()
        if conditions is not None and 0 < len(conditions.exclude) <= _POST_EXCLUDE_MAX:
            # A must_not-has-id condition makes Edge check every point (several ms at 100k):
            # ask for that many more hits and drop the excluded ones here instead (same result).
            excluded = {str(pid) for pid in conditions.exclude}
            conditions = attrs.evolve(conditions, exclude=())
        want = limit + len(excluded)
        flt = None if conditions is None or conditions.is_empty else self._filter(conditions)
        points = None if flt is None else self._search_broad(vector, want, flt, with_ids)
        if points is None:
            points = self._query(vector, want, flt, with_ids)
        if with_ids:
            hits = [(str(p.id), p.score, (p.payload or {}).get(common.ID_FIELD)) for p in points]
        else:
            hits = [(str(p.id), p.score, None) for p in points]
        if excluded:
            hits = [hit for hit in hits if hit[0] not in excluded][:limit]
        return hits

    def _query(self, vector: list[float], limit: int, flt: Any, with_ids: bool) -> list[Any]:
        qe = self._qe
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector),
            filter=flt,
            params=self._params,
            with_payload=[common.ID_FIELD] if with_ids else False,
        )
        return self.shard.query(request)

    def _search_broad(self, vector: list[float], limit: int, flt: Any, with_ids: bool) -> Any:
        """A filter most points pass (one user's store searched with its user_id) costs Edge
        more than no filter: it walks the payload index for every match. Then search without
        the filter for a few more hits than needed and keep those that pass it (checked by Edge
        on that handful of ids). ``None``: the filter is selective, or too few passed."""
        qe = self._qe
        total = self.shard.count(qe.CountRequest(exact=False))
        if total == 0:
            return []
        passing = self.shard.count(qe.CountRequest(exact=False, filter=flt))
        if passing < _BROAD_FILTER * total:
            return None
        pool = min(total, math.ceil(limit * total / max(passing, 1) * 1.25) + 4)
        first = self._query(vector, pool, None, False)
        kept = qe.Filter(must=[qe.HasIdCondition({p.id for p in first}), flt])
        points = self._query(vector, limit, kept, with_ids) if first else []
        if len(points) >= limit or len(first) < pool:
            return points
        return None

    def lookup(self, keys: list[str]) -> dict[str, str]:
        records = self.shard.retrieve(
            [uuid.UUID(k) for k in keys], with_payload=[common.ID_FIELD], with_vector=False
        )
        return {
            str(r.id): r.payload[common.ID_FIELD]
            for r in records
            if r.payload and common.ID_FIELD in r.payload
        }

    def _filter(self, c: Conditions) -> Any:
        qe = self._qe
        must: list[Any] = [
            qe.FieldCondition(key=key, match=qe.MatchValue(value)) for key, value in c.equals
        ]
        if c.has_time:
            bounds = qe.RangeFloat(gt=c.time_gt, gte=c.time_gte, lt=c.time_lt, lte=c.time_lte)
            must.append(qe.FieldCondition(key="time_stamp", range=bounds))
        must_not = [qe.HasIdCondition(set(c.exclude))] if c.exclude else None
        return qe.Filter(must=must or None, must_not=must_not)


def _ram_dir() -> str | None:
    """Where an in-memory Edge shard goes: a RAM file system when there is one (its write-ahead
    log then costs no disk syncs), else the system's temporary directory."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _stored_size(shard_dir: Path) -> int | None:
    """The vector size an existing shard was created with (best effort, for error messages)."""
    try:
        config = json.loads((shard_dir / "edge_config.json").read_text(encoding="utf-8"))
        vectors = config.get("vectors", {})
        params = vectors.get("") if isinstance(vectors, dict) else None
        return int(params["size"]) if isinstance(params, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
