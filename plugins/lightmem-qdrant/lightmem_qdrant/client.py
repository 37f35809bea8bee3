"""The qdrant-client engine: in memory, a qdrant-client local folder, or a Qdrant server.

In memory and in a local folder, qdrant-client searches in Python (exact, filters applied
point by point): right for tests, small stores and stores written by the original LightMem.
Against a server the search, filters and payload indexes run in Qdrant itself.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from . import common
from .common import Conditions

if TYPE_CHECKING:
    from .options import QdrantOptions


class ClientEngine:
    """One collection through ``qdrant_client.QdrantClient``."""

    name = "client"

    def __init__(self, options: QdrantOptions, mode: str, path: str | None) -> None:
        self.options = options
        self.mode = mode  # "memory" | "path" | "server"
        self.path = path
        self.client: Any = None
        self._models: Any = None
        self._claimed = False

    @property
    def where(self) -> str:
        if self.mode == "memory":
            return "in memory"
        if self.mode == "path":
            return f"at {self.path}"
        o = self.options
        return f"on the Qdrant server {o.url or f'{o.host}:{o.port or 6333}'}"

    def _client_arguments(self) -> dict[str, Any]:
        o = self.options
        if self.mode == "memory":
            return {"location": ":memory:"}
        if self.mode == "path":
            return {"path": self.path}
        arguments: dict[str, Any] = {
            "api_key": o.api_key,
            "prefer_grpc": o.prefer_grpc,
            "grpc_port": o.grpc_port,
            "https": o.https,
            "timeout": o.timeout,
            "check_compatibility": False,
        }
        if o.url is not None:
            arguments["url"] = o.url
            if o.port is not None:
                arguments["port"] = o.port
        else:
            arguments["host"] = o.host
            arguments["port"] = o.port or 6333
        return arguments

    # -- lifecycle -------------------------------------------------------------------------------

    def attach(self, model_name: str, dimension: int) -> None:
        from qdrant_client import QdrantClient, models

        self._models = models
        if self.mode == "path":
            assert self.path is not None
            common.claim(self.path, f"engine client, collection {self.options.collection_name}")
            self._claimed = True
        try:
            try:
                self.client = QdrantClient(**self._client_arguments())
            except RuntimeError as exc:
                if "already accessed" in str(exc):
                    raise common.locked_error(str(self.path)) from None
                raise
            self._attach_collection(model_name, dimension)
        except BaseException:
            self.close()
            raise

    def _attach_collection(self, model_name: str, dimension: int) -> None:
        models, name = self._models, self.options.collection_name
        try:
            exists = self.client.collection_exists(name)
        except Exception as exc:
            if self.mode != "server":
                raise
            raise RuntimeError(
                f"cannot reach the Qdrant server {self.where.removeprefix('on the Qdrant server ')}"
                f" ({type(exc).__name__}: {exc}). Start it (e.g. `docker run -p 6333:6333 "
                f"qdrant/qdrant`) or fix embedding_retriever.configs url/host/port/api_key"
            ) from exc
        if not exists:
            on_disk = self.options.on_disk if self.mode == "server" else None
            self.client.create_collection(
                collection_name=name,
                vectors_config=models.VectorParams(
                    size=dimension, distance=models.Distance.COSINE, on_disk=on_disk
                ),
                metadata=common.describe(model_name, dimension),
            )
        else:
            info = self.client.get_collection(name)
            metadata = info.config.metadata or {}
            common.check_compatible(
                collection=name,
                where=self.where,
                stored_model=metadata.get(common.META_MODEL),
                stored_dimension=_vector_size(info, name, self.where),
                model_name=model_name,
                dimension=dimension,
            )
            if common.META_MODEL not in metadata:
                self.client.update_collection(
                    collection_name=name, metadata=common.describe(model_name, dimension)
                )
        if self.mode == "server":
            self._ensure_payload_indexes()

    def _ensure_payload_indexes(self) -> None:
        models, name = self._models, self.options.collection_name
        present = set(self.client.get_collection(name).payload_schema or {})
        wanted = [
            *((f, models.PayloadSchemaType.KEYWORD) for f in common.KEYWORD_FIELDS),
            *((f, models.PayloadSchemaType.INTEGER) for f in common.INTEGER_FIELDS),
            *((f, models.PayloadSchemaType.FLOAT) for f in common.FLOAT_FIELDS),
        ]
        for field, schema in wanted:
            if field not in present:
                self.client.create_payload_index(name, field_name=field, field_schema=schema)

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()
        if self._claimed:
            common.release(str(self.path))
            self._claimed = False

    def drop(self) -> None:
        """Delete this collection (only this one) from the client's storage."""
        from qdrant_client import QdrantClient

        try:
            if self.client is None:
                if self.mode == "path":
                    common.claim(str(self.path), "dropping the collection")
                    self._claimed = True
                try:
                    self.client = QdrantClient(**self._client_arguments())
                except RuntimeError as exc:
                    if "already accessed" in str(exc):
                        raise common.locked_error(str(self.path)) from None
                    raise
            if self.client.collection_exists(self.options.collection_name):
                self.client.delete_collection(self.options.collection_name)
        finally:
            self.close()

    # -- data ------------------------------------------------------------------------------------

    def upsert(self, points: list[tuple[uuid.UUID, list[float], dict[str, Any]]]) -> None:
        models = self._models
        self.client.upsert(
            collection_name=self.options.collection_name,
            points=[
                models.PointStruct(id=str(pid), vector=vector, payload=payload)
                for pid, vector, payload in points
            ],
            wait=True,
        )

    def after_upserts(self) -> None:
        """Nothing to do: the server (or qdrant-client) indexes on its own."""

    def optimize(self) -> None:
        """Nothing to do: the server optimizes on its own."""

    def delete(self, ids: list[uuid.UUID]) -> None:
        self.client.delete(
            collection_name=self.options.collection_name,
            points_selector=self._models.PointIdsList(points=[str(i) for i in ids]),
            wait=True,
        )

    def count(self) -> int:
        return int(self.client.count(self.options.collection_name, exact=True).count)

    def stats(self) -> dict[str, Any]:
        info = self.client.get_collection(self.options.collection_name)
        return {"points": info.points_count, "segments": info.segments_count}

    def search(
        self, vector: list[float], limit: int, conditions: Conditions | None, with_ids: bool
    ) -> list[tuple[str, float, str | None]]:
        params = None
        if self.options.hnsw_ef is not None:
            params = self._models.SearchParams(hnsw_ef=self.options.hnsw_ef)
        response = self.client.query_points(
            collection_name=self.options.collection_name,
            query=vector,
            query_filter=None if conditions is None else self._filter(conditions),
            limit=limit,
            search_params=params,
            with_payload=[common.ID_FIELD] if with_ids else False,
            with_vectors=False,
        )
        return [
            (str(p.id), p.score, (p.payload or {}).get(common.ID_FIELD) if with_ids else None)
            for p in response.points
        ]

    def lookup(self, keys: list[str]) -> dict[str, str]:
        records = self.client.retrieve(
            self.options.collection_name,
            ids=keys,
            with_payload=[common.ID_FIELD],
            with_vectors=False,
        )
        return {
            str(r.id): r.payload[common.ID_FIELD]
            for r in records
            if r.payload and common.ID_FIELD in r.payload
        }

    def _filter(self, c: Conditions) -> Any:
        m = self._models
        must: list[Any] = [
            m.FieldCondition(key=key, match=m.MatchValue(value=value)) for key, value in c.equals
        ]
        if c.has_time:
            bounds = m.Range(gt=c.time_gt, gte=c.time_gte, lt=c.time_lt, lte=c.time_lte)
            must.append(m.FieldCondition(key="time_stamp", range=bounds))
        must_not = [m.HasIdCondition(has_id=[str(i) for i in c.exclude])] if c.exclude else None
        return m.Filter(must=must or None, must_not=must_not)


def _vector_size(info: Any, name: str, where: str) -> int:
    vectors = info.config.params.vectors
    size = getattr(vectors, "size", None)
    if size is None:
        raise ValueError(
            f"qdrant collection {name!r} ({where}) uses named vectors "
            f"({', '.join(vectors or {})}); LightMem needs a collection with one unnamed "
            f"vector: use another collection_name"
        )
    return int(size)
