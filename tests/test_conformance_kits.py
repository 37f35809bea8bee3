"""The conformance suites of the testing kit run against small real implementations.

They must pass on a correct backend and fail on a broken one (the `Broken*` checks below).
"""

from __future__ import annotations

import hashlib
import math
import struct
from pathlib import Path

import attrs
import pytest
from lightmem_hookspecs import SearchFilter

from lightmem_core.testing.conformance.graph_memory import (
    GARDEN,
    GARDEN_ENTITIES,
    GARDEN_ENTRIES,
    GraphMemoryConformance,
)
from lightmem_core.testing.conformance.multimodal_embedder import (
    MultimodalEmbedderConformance,
)
from lightmem_core.testing.conformance.reranker import RerankerConformance, make_hits
from lightmem_core.testing.reference import MemoryGraph, words


class OverlapReranker:
    """Reorders hits by word overlap with the query."""

    def rerank(self, query, hits, *, limit):
        q = set(words(query))
        return sorted(hits, key=lambda h: -len(q & set(words(h.entry.memory))))[:limit]


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


class TestMemoryGraph(GraphMemoryConformance):
    @pytest.fixture
    def make_backend(self, tmp_path):
        return lambda: MemoryGraph(tmp_path / "graph.json")


class TestMemoryGraphInMemory(GraphMemoryConformance):
    persistent = False

    @pytest.fixture
    def make_backend(self):
        return MemoryGraph


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


class SpeakerBlindGraph(MemoryGraph):
    """Honours every filter field but ``speaker``."""

    def search(self, seeds, *, limit, hops=2, fan_out=20, filter=None, validity=None):
        if filter is not None:
            filter = attrs.evolve(filter, speaker=None)
        return super().search(
            seeds, limit=limit, hops=hops, fan_out=fan_out, filter=filter, validity=validity
        )


class WalksThroughFilteredGraph(MemoryGraph):
    """Walks through every relation and filters only what it returns."""

    def search(self, seeds, *, limit, hops=2, fan_out=20, filter=None, validity=None):
        hits = super().search(seeds, limit=10_000, hops=hops, fan_out=fan_out)
        f = filter or SearchFilter()
        kept = [
            h
            for h in hits
            if f.matches(h.path[-1].entry_id, h.path[-1].payload())
            and (validity is None or validity.admits(h.path[-1]))
        ]
        return kept[:limit]


class NeverClosingGraph(MemoryGraph):
    """Stores exclusive relations without closing the contradicted ones."""

    def _settle(self, keys, now):
        super()._settle(set(), now)


class ScopeBlindResolver(MemoryGraph):
    """Resolves names in every scope."""

    def resolve(self, names, *, filter=None):
        return super().resolve(names)


class ForgetfulGraph(MemoryGraph):
    """Keeps relations but not which entries were indexed across a reopen."""

    def _save(self):
        indexed, self.indexed = self.indexed, set()
        super()._save()
        self.indexed = indexed


def _garden(backend):
    backend.index(GARDEN_ENTRIES, GARDEN_ENTITIES, GARDEN)
    return backend


@pytest.mark.parametrize(
    ("backend_class", "check"),
    [
        (SpeakerBlindGraph, lambda s, b, new: s.test_filter_on_search(_garden(b), "speaker")),
        (
            WalksThroughFilteredGraph,
            lambda s, b, new: s.test_a_filtered_relation_is_not_walked_through(_garden(b)),
        ),
        (
            NeverClosingGraph,
            lambda s, b, new: s.test_a_contradicting_relation_closes_the_older_one(b),
        ),
        (ScopeBlindResolver, lambda s, b, new: s.test_resolution_honours_the_scope(b)),
        (ForgetfulGraph, lambda s, b, new: s.test_reopen_keeps_everything(b, new)),
    ],
)
def test_graph_suite_rejects_partial_backends(backend_class, check, tmp_path):
    path = tmp_path / "graph.json"
    suite = GraphMemoryConformance()
    with pytest.raises(AssertionError):
        check(suite, backend_class(path), lambda: backend_class(path))
    clean = tmp_path / "clean.json"
    check(suite, MemoryGraph(clean), lambda: MemoryGraph(clean))
