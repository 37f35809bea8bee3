"""Small, exact reference backends for tests: a hashing embedder and brute-force indexes.

They are real implementations of the protocols (no model, no server), so the core's pipeline
tests and plugin authors' tests can run a whole ``LightMemory`` in milliseconds. Register
``ReferencePlugin()`` on a fresh host and select the backends ``hash``, ``exact`` and
``keyword``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
from lightmem_hookspecs import IndexRecord, SearchFilter, hookimpl

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
        if self.path is None:
            return
        self.path.write_text(
            json.dumps(
                {"meta": self.meta, "records": [attrs.asdict(r) for r in self.records.values()]}
            )
        )

    def upsert(self, records: Sequence[IndexRecord]) -> None:
        for r in records:
            self.records[r.id] = r
        self._save()

    def search(
        self, vector: Sequence[float], *, limit: int, filter: SearchFilter | None = None
    ) -> list[tuple[str, float]]:
        f = filter or SearchFilter()
        scored = [
            (r.id, sum(a * b for a, b in zip(vector, r.vector or (), strict=False)))
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


class ReferencePlugin:
    """Registers ``hash`` (text_embedder), ``exact`` (embedding_retriever), ``keyword``."""

    @hookimpl
    def lightmem_register_text_embedders(self, register: Any) -> None:
        register("hash", lambda o, c: HashEmbedder(o.dims), options=HashEmbedderOptions)

    @hookimpl
    def lightmem_register_embedding_retrievers(self, register: Any) -> None:
        def build(options: ExactOptions, context: Any) -> ExactVectorIndex:
            path = Path(context.memory_dir) / "exact-index.json" if options.persist else None
            return ExactVectorIndex(path)

        register("exact", build, options=ExactOptions)

    @hookimpl
    def lightmem_register_context_retrievers(self, register: Any) -> None:
        register("keyword", lambda o, c: KeywordIndex())


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
