"""Small, exact reference backends for tests: a hashing embedder, brute-force indexes, a graph.

They are real implementations of the protocols (no model, no server), so the core's pipeline
tests and plugin authors' tests can run a whole ``LightMemory`` in milliseconds. Register
``ReferencePlugin()`` on a fresh host and select the backends ``hash``, ``exact``, ``keyword``
and (graph memory) ``memory``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
from lightmem_hookspecs import (
    BackendContext,
    BackendRegistrar,
    Entity,
    GraphHit,
    IndexRecord,
    Relation,
    Scope,
    SearchFilter,
    Validity,
    hookimpl,
)
from lightmem_hookspecs import graph as g

from .scripted import ScriptedOptions

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@attrs.frozen
class HashEmbedderOptions:
    dims: int = 64


class HashEmbedder:
    """Bag-of-words feature hashing, L2-normalised: texts sharing words are similar."""

    def __init__(self, dims: int = 64) -> None:
        self.dimension = dims
        self.model_name = f"reference-hash-{dims}"
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        out = []
        for text in texts:
            vec = [0.0] * self.dimension
            for w in words(text):
                h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "big")
                vec[h % self.dimension] += 1.0
            norm = math.sqrt(sum(v * v for v in vec)) or 1.0
            out.append([v / norm for v in vec])
        return out


#: The reference multimodal embedder's axes: one per colour name, plus "other".
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 200, 60),
    "blue": (30, 60, 220),
    "yellow": (230, 220, 40),
    "black": (10, 10, 10),
    "white": (245, 245, 245),
}


class ColourEmbedder:
    """A reference multimodal embedder whose vectors are known: one axis per colour name.

    A text's vector counts the colour names it contains (``"the red picture"`` is the ``red``
    axis); an image's vector is the axis of the named colour nearest to its mean pixel, plus a
    little of the others so ties stay ordered. Text and images share the space, so a query
    naming a colour must find the image of that colour first.
    """

    model_name = "reference-colours"

    def __init__(self) -> None:
        self.names = list(COLOURS)
        self.dimension = len(self.names) + 1
        self.images_embedded = 0

    def _unit(self, vec: list[float]) -> list[float]:
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]

    def embed_texts(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            vec = [0.0] * self.dimension
            for w in words(text):
                if w in COLOURS:
                    vec[self.names.index(w)] += 1.0
            if not any(vec):
                vec[-1] = 1.0
            out.append(self._unit(vec))
        return out

    def embed_images(self, images: Sequence[bytes]) -> list[list[float]]:
        import io

        from PIL import Image, ImageStat

        out = []
        for data in images:
            with Image.open(io.BytesIO(data)) as image:
                mean = ImageStat.Stat(image.convert("RGB")).mean
            distance = [
                math.dist(mean, COLOURS[name]) for name in self.names
            ]  # nearest colour: the largest value
            vec = [1.0 / (1.0 + d) for d in distance] + [0.0]
            best = min(range(len(distance)), key=distance.__getitem__)
            vec[best] += 1.0
            out.append(self._unit(vec))
        self.images_embedded += len(images)
        return out


def colour_png(name_or_rgb: str | tuple[int, int, int], size: int = 8) -> bytes:
    """A small PNG of one colour (a named reference colour or an RGB triple)."""
    import io

    from PIL import Image

    rgb = COLOURS[name_or_rgb] if isinstance(name_or_rgb, str) else name_or_rgb
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(data: bytes, media_type: str = "image/png") -> str:
    import base64

    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


@attrs.frozen
class ExactOptions:
    persist: bool = True


class ExactVectorIndex:
    """Brute-force cosine search; persists to a JSON file in the memory directory."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.records: dict[str, IndexRecord] = {}
        self.meta: dict[str, Any] | None = None

    def open(self, *, model_name: str, dimension: int) -> None:
        if self.path is not None and self.path.exists():
            data = json.loads(self.path.read_text())
            self.meta = data["meta"]
            self.records = {
                r["id"]: IndexRecord(r["id"], r["text"], r["payload"], tuple(r["vector"]))
                for r in data["records"]
            }
        if self.meta is not None and self.meta != {"model": model_name, "dims": dimension}:
            raise ValueError(
                f"index built with {self.meta}, config uses {model_name} ({dimension} dims)"
            )
        self.meta = {"model": model_name, "dims": dimension}

    def recreate(self, *, model_name: str, dimension: int) -> None:
        self.records, self.meta = {}, {"model": model_name, "dims": dimension}
        self._save()

    def _save(self) -> None:
        if self.path is None or self.meta is None:  # never opened: nothing of ours to write
            return
        # Written aside and renamed over the old file: a crash mid-write leaves the old index.
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(
            json.dumps(
                {"meta": self.meta, "records": [attrs.asdict(r) for r in self.records.values()]}
            )
        )
        os.replace(tmp, self.path)

    def _check_size(self, vector: Sequence[float], what: str) -> None:
        dims = self.meta["dims"] if self.meta else None
        if len(vector) != dims:
            raise ValueError(f"{what} has {len(vector)} dimensions, the index holds {dims}")

    def upsert(self, records: Sequence[IndexRecord]) -> None:
        for r in records:
            self._check_size(r.vector or (), f"the vector of {r.id!r}")
        for r in records:
            self.records[r.id] = r
        self._save()

    def search(
        self, vector: Sequence[float], *, limit: int, filter: SearchFilter | None = None
    ) -> list[tuple[str, float]]:
        self._check_size(vector, "the query vector")
        f = filter or SearchFilter()
        scored = [
            (r.id, _cosine(vector, r.vector or ()))
            for r in self.records.values()
            if f.matches(r.id, r.payload)
        ]
        scored.sort(key=lambda p: -p[1])
        return scored[:limit]

    def delete(self, ids: Sequence[str]) -> None:
        for i in ids:
            self.records.pop(i, None)
        self._save()

    def count(self) -> int:
        return len(self.records)

    def close(self) -> None:
        self._save()


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norms if norms else 0.0


class KeywordIndex:
    """In-memory word-overlap retriever (rebuilt by the core from the record store)."""

    def __init__(self) -> None:
        self.records: dict[str, IndexRecord] = {}

    def index(self, records: Sequence[IndexRecord]) -> None:
        for r in records:
            self.records[r.id] = r

    def search(
        self, query: str, *, limit: int, filter: SearchFilter | None = None
    ) -> list[tuple[str, float]]:
        f = filter or SearchFilter()
        q = set(words(query))
        scored = []
        for r in self.records.values():
            overlap = len(q & set(words(r.text)))
            if overlap and f.matches(r.id, r.payload):
                scored.append((r.id, float(overlap)))
        scored.sort(key=lambda p: -p[1])
        return scored[:limit]

    def delete(self, ids: Sequence[str]) -> None:
        for i in ids:
            self.records.pop(i, None)

    def count(self) -> int:
        return len(self.records)

    def close(self) -> None:
        pass


class MemoryGraph:
    """A graph memory in dicts, following ``lightmem_hookspecs.graph`` to the letter.

    Persists to a JSON file (written to a temporary file, then renamed) when given a path.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.nodes: dict[str, Entity] = {}
        self.edges: dict[str, Relation] = {}
        self.indexed: set[str] = set()
        if path is not None and path.exists():
            data = json.loads(path.read_text())
            self.nodes = {e["id"]: _entity(e) for e in data["entities"]}
            self.edges = {r["id"]: _relation(r) for r in data["relations"]}
            self.indexed = set(data["entries"])

    def _save(self) -> None:
        if self.path is None:
            return
        data = {
            "entities": [attrs.asdict(e) for e in self.nodes.values()],
            "relations": [attrs.asdict(r) for r in self.edges.values()],
            "entries": sorted(self.indexed),
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)

    def _drop(self, entry_ids: set[str]) -> set[tuple[Any, ...]]:
        gone = [r for r in self.edges.values() if r.entry_id in entry_ids]
        for rel in gone:
            del self.edges[rel.id]
        return {g.closing_key(r) for r in gone if r.exclusive}

    def _settle(self, keys: set[tuple[Any, ...]], now: float) -> None:
        for key in keys:
            group = [r for r in self.edges.values() if r.exclusive and g.closing_key(r) == key]
            for rel in g.apply_closing(group, now):
                self.edges[rel.id] = rel
        named = {r.subject for r in self.edges.values()} | {r.object for r in self.edges.values()}
        self.nodes = {k: v for k, v in self.nodes.items() if k in named}

    def index(
        self, entry_ids: Sequence[str], entities: Sequence[Entity], relations: Sequence[Relation]
    ) -> None:
        import time

        ids = set(entry_ids)
        stray = [r.id for r in relations if r.entry_id not in ids]
        if stray:
            raise ValueError(f"relations {stray} come from entries not in entry_ids")
        known = set(self.nodes) | {e.id for e in entities}
        dangling = [r.id for r in relations if not {r.subject, r.object} <= known]
        if dangling:
            raise ValueError(f"relations {dangling} name entities that were not given")
        keys = self._drop(ids)
        for ent in entities:
            old = self.nodes.get(ent.id)
            self.nodes[ent.id] = ent if old is None else g.merge_entity(old, ent)
        for rel in relations:
            self.edges[rel.id] = attrs.evolve(
                rel, valid_until=None, superseded_at=None, superseded_by=None
            )
            if rel.exclusive:
                keys.add(g.closing_key(rel))
        self.indexed |= ids
        self._settle(keys, time.time())
        self._save()

    def delete(self, entry_ids: Sequence[str]) -> None:
        import time

        ids = set(entry_ids)
        self._settle(self._drop(ids), time.time())
        self.indexed -= ids
        self._save()

    def entry_ids(self) -> set[str]:
        return set(self.indexed)

    def resolve(self, names: Sequence[str], *, filter: SearchFilter | None = None) -> list[Entity]:
        wanted = {g.normalize_name(n) for n in names} - {""}
        return [
            e
            for e in self.nodes.values()
            if wanted & set(e.names()) and g.scope_matches(e.scope, filter)
        ]

    def entities(self, *, filter: SearchFilter | None = None) -> list[Entity]:
        return [e for e in self.nodes.values() if g.scope_matches(e.scope, filter)]

    def relations(
        self,
        *,
        entry_ids: Sequence[str] | None = None,
        filter: SearchFilter | None = None,
        validity: Validity | None = None,
    ) -> list[Relation]:
        only = None if entry_ids is None else set(entry_ids)
        return [
            r
            for r in self.edges.values()
            if (only is None or r.entry_id in only) and g.usable(r, filter, validity)
        ]

    def entry_counts(
        self, entity_ids: Sequence[str], *, filter: SearchFilter | None = None
    ) -> dict[str, int]:
        return g.entry_counts(entity_ids, self._touching, filter=filter)

    def _touching(self, entity_ids: Sequence[str]) -> dict[str, list[Relation]]:
        wanted = set(entity_ids)
        out: dict[str, list[Relation]] = {e: [] for e in wanted}
        for rel in self.edges.values():
            for end in {rel.subject, rel.object} & wanted:
                out[end].append(rel)
        return out

    def search(
        self,
        seeds: Sequence[str],
        *,
        limit: int,
        hops: int = 2,
        fan_out: int = 20,
        filter: SearchFilter | None = None,
        validity: Validity | None = None,
    ) -> list[GraphHit]:
        return g.walk(
            seeds,
            self._touching,
            limit=limit,
            hops=hops,
            fan_out=fan_out,
            filter=filter,
            validity=validity,
        )

    def count(self) -> int:
        return len(self.edges)

    def close(self) -> None:
        pass


def _entity(data: dict[str, Any]) -> Entity:
    return Entity(**{**data, "scope": Scope(**data["scope"]), "aliases": tuple(data["aliases"])})


def _relation(data: dict[str, Any]) -> Relation:
    return Relation(**{**data, "scope": Scope(**data["scope"])})


@attrs.frozen
class MemoryGraphOptions:
    persist: bool = True


class ReferencePlugin:
    """Registers ``hash`` (text_embedder), ``colours`` (multimodal_embedder: the
    :class:`ColourEmbedder`), ``exact`` (embedding_retriever), ``keyword``
    (context_retriever), ``memory`` (graph_memory) and ``scripted`` (memory_manager: the
    :class:`~lightmem_core.testing.scripted.ScriptedMemoryManager` given as
    ``memory_manager``, else a new one per memory, answering as
    :class:`~lightmem_core.eval.economy.ScriptedResponder`)."""

    def __init__(self, memory_manager: Any = None) -> None:
        self.memory_manager = memory_manager

    @hookimpl
    def lightmem_register_backends(self, registrar: BackendRegistrar) -> None:
        def build_scripted(options: ScriptedOptions, context: Any) -> Any:
            if self.memory_manager is not None:
                return self.memory_manager
            from ..eval.economy import ScriptedResponder
            from .scripted import ScriptedMemoryManager

            return ScriptedMemoryManager(
                responder=ScriptedResponder(), max_tokens=options.max_tokens
            )

        def build_exact(options: ExactOptions, context: BackendContext) -> ExactVectorIndex:
            name = context.storage_name("exact-index.json")  # several in one chain keep apart
            path = Path(context.memory_dir) / name if options.persist else None
            return ExactVectorIndex(path)

        def build_graph(options: MemoryGraphOptions, context: BackendContext) -> MemoryGraph:
            name = context.storage_name("reference-graph.json")
            path = Path(context.memory_dir) / name if options.persist else None
            return MemoryGraph(path)

        registrar.memory_manager("scripted", build_scripted, options=ScriptedOptions)
        registrar.text_embedder(
            "hash", lambda o, c: HashEmbedder(o.dims), options=HashEmbedderOptions
        )
        registrar.multimodal_embedder("colours", lambda o, c: ColourEmbedder())
        registrar.embedding_retriever("exact", build_exact, options=ExactOptions)
        registrar.context_retriever("keyword", lambda o, c: KeywordIndex())
        registrar.graph_memory("memory", build_graph, options=MemoryGraphOptions)


def reference_config(memory_dir: str | Path, **overrides: Any) -> dict[str, Any]:
    """A configuration selecting the reference backends, for tests."""
    return {
        "memory_dir": str(memory_dir),
        "text_embedder": {"model_name": "hash"},
        "embedding_retriever": {"model_name": "exact"},
        "context_retriever": {"model_name": "keyword"},
        "retrieve_strategy": "hybrid",
        **overrides,
    }
