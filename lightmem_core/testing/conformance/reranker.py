"""Conformance suite for ``reranker`` backends.

Subclass :class:`RerankerConformance` and provide a ``backend`` fixture returning a ready
:class:`~lightmem_hookspecs.Reranker`. The suite builds hits itself; a reranker must return at
most ``limit`` of the hits it was given (same objects or copies with the same ids), best first,
without inventing ids, and must handle an empty list.
"""

from __future__ import annotations

import pytest
from lightmem_hookspecs import MemoryEntry, Reranker, SearchHit

TEXTS = [
    "My dog Rex loves the lake.",
    "The quarterly report is due on Friday.",
    "I moved to Lisbon last May.",
    "Rex the dog learned to swim this summer.",
    "Coffee prices went up again.",
]


def make_hits() -> list[SearchHit]:
    return [
        SearchHit(
            id=f"e{i}",
            score=1.0 / (i + 1),
            entry=MemoryEntry(id=f"e{i}", memory=text),
            scores={"embedding": 1.0 / (i + 1)},
        )
        for i, text in enumerate(TEXTS)
    ]


class RerankerConformance:
    @pytest.fixture
    def backend(self):  # pragma: no cover - the subclass provides it
        raise NotImplementedError("provide a `backend` fixture returning your reranker")

    def test_implements_the_protocol(self, backend):
        assert isinstance(backend, Reranker)

    def test_returns_at_most_limit_hits_it_was_given(self, backend):
        hits = make_hits()
        out = backend.rerank("where does the dog swim", hits, limit=3)
        assert len(out) <= 3
        assert {h.id for h in out} <= {h.id for h in hits}
        assert len({h.id for h in out}) == len(out)

    def test_keeps_entries(self, backend):
        out = backend.rerank("dog", make_hits(), limit=5)
        assert all(h.entry is not None and h.entry.id == h.id for h in out)

    def test_empty_input(self, backend):
        assert list(backend.rerank("anything", [], limit=5)) == []
