"""The conformance suites of the testing kit run against small real implementations.

They must pass on a correct backend and fail on a broken one (the `Broken*` checks below).
"""

from __future__ import annotations

import hashlib
import math
import struct
from pathlib import Path

import pytest
from lightmem_hookspecs import SearchFilter

from lightmem_core.testing.conformance.graph_memory import GraphMemoryConformance
from lightmem_core.testing.conformance.multimodal_embedder import (
    MultimodalEmbedderConformance,
)
from lightmem_core.testing.conformance.reranker import RerankerConformance, make_hits
from lightmem_core.testing.reference import words


class OverlapReranker:
    """Reorders hits by word overlap with the query."""

    def rerank(self, query, hits, *, limit):
        q = set(words(query))
        return sorted(hits, key=lambda h: -len(q & set(words(h.entry.memory))))[:limit]


class EntityGraph:
    """Entries linked through shared entities; search scores entries by matched entities."""

    def __init__(self):
        self.entries = {}

    def add(self, entries):
        self.entries.update({e.id: e for e in entries})

    def search(self, query, *, limit, filter=None):
        f = filter or SearchFilter()
        q = {w for w in words(query)}
        scored = []
        for e in self.entries.values():
            if not f.matches(e.id, e.scope.as_dict()):
                continue
            score = sum(1 for ent in e.entities if ent.lower() in q)
            if score:
                scored.append((e.id, float(score)))
        return sorted(scored, key=lambda p: -p[1])[:limit]

    def delete(self, ids):
        for i in ids:
            self.entries.pop(i, None)

    def close(self):
        pass


class FileHashImageEmbedder:
    """Embeds an image file by hashing its bytes (deterministic, unit length)."""

    dimension = 8
    model_name = "file-hash"

    def embed_images(self, images):
        out = []
        for path in images:
            digest = hashlib.sha256(Path(path).read_bytes()).digest()
            v = [float(x) for x in struct.unpack("8i", digest)]
            norm = math.sqrt(sum(x * x for x in v))
            out.append([x / norm for x in v])
        return out


class TestOverlapReranker(RerankerConformance):
    @pytest.fixture
    def backend(self):
        return OverlapReranker()


class TestEntityGraph(GraphMemoryConformance):
    @pytest.fixture
    def backend(self):
        return EntityGraph()


class TestFileHashImageEmbedder(MultimodalEmbedderConformance):
    @pytest.fixture
    def backend(self):
        return FileHashImageEmbedder()

    @pytest.fixture
    def images(self, tmp_path):
        paths = []
        for i in range(2):
            p = tmp_path / f"img{i}.png"
            p.write_bytes(bytes([137, 80, 78, 71, i]) * 10)
            paths.append(str(p))
        return paths


def test_reranker_suite_catches_invented_ids():
    class Inventing:
        def rerank(self, query, hits, *, limit):
            return [*hits, make_hits()[0].__class__(id="zzz", score=0.0)][: limit + 1]

    suite = RerankerConformance()
    with pytest.raises(AssertionError):
        suite.test_returns_at_most_limit_hits_it_was_given(Inventing())


def test_graph_suite_catches_ignored_filters():
    class Leaky(EntityGraph):
        def search(self, query, *, limit, filter=None):
            return super().search(query, limit=limit)

    suite = GraphMemoryConformance()
    with pytest.raises(AssertionError):
        suite.test_scope_filter(Leaky())
