"""Conformance suite for ``reranker`` backends.

Subclass :class:`RerankerConformance` and provide a ``backend`` fixture returning a ready
:class:`~lightmem_hookspecs.Reranker`::

    class TestMyReranker(RerankerConformance):
        @pytest.fixture
        def backend(self):
            return MyReranker(...)

The suite builds the hits itself, shaped as the core hands the fused pool to the first reranker
of the chain (see :class:`~lightmem_hookspecs.Reranker`): best first by fused score
(reciprocal-rank fusion), each with its entry and every retriever's score and 1-based rank. What
is checked is what the Protocol promises, without assuming any ranking function:

* it returns ``min(limit, len(hits))`` hits: no more than ``limit``, and none dropped that
  ``limit`` did not ask to drop;
* only hits it was given, each once, with the entry and the retrievers' ``scores`` / ``ranks``
  it came with (same objects or evolved copies);
* best first: a hit whose text is the query word for word is never put after hits that share
  no word with the query, when the retrievers ranked it first too; when the reranker sets its
  own ``score``, the scores it returns do not increase;
* a smaller ``limit`` gives the first hits of the larger answer (rank first, then cut);
* an empty list gives an empty list.
"""

from __future__ import annotations

import attrs
import pytest
from lightmem_hookspecs import MemoryEntry, Reranker, SearchHit

#: The query is TEXTS[0] word for word; TEXTS[1] and TEXTS[3] share words with it, the other
#: three none. The fused order (:func:`make_hits`) puts the unrelated e2 above the related e3.
QUERY = "rex the dog learned to swim this summer"
TEXTS = [
    "Rex the dog learned to swim this summer.",
    "My dog Rex loves the lake.",
    "Quarterly report due on Friday.",
    "The dog swims in the lake every summer.",
    "Coffee prices went up again.",
    "Moved house in Lisbon last May.",
]
#: Hits sharing no word with QUERY.
UNRELATED = ("e2", "e4", "e5")
_RRF_K = 10


def make_hits() -> list[SearchHit]:
    """Six hits as reciprocal-rank fusion of two retrievers hands them over, best first.

    ``score`` is the fused score; ``scores`` / ``ranks`` hold each retriever's own score and
    1-based rank (a hit the lexical index did not return has no ``bm25`` key). The order is
    e0, e1, e2, e3, e5, e4.
    """
    orders = {"embedding": [0, 1, 2, 3, 5, 4], "bm25": [0, 1]}
    hits = []
    for i, text in enumerate(TEXTS):
        scores: dict[str, float] = {}
        ranks: dict[str, int] = {}
        for label, order in orders.items():
            if i in order:
                ranks[label] = order.index(i) + 1
                scores[label] = (1.0 if label == "embedding" else 10.0) - 0.1 * ranks[label]
        hits.append(
            SearchHit(
                id=f"e{i}",
                score=sum(1.0 / (_RRF_K + r) for r in ranks.values()),
                entry=MemoryEntry(id=f"e{i}", memory=text),
                scores=scores,
                ranks=ranks,
            )
        )
    return sorted(hits, key=lambda h: -h.score)


def _snapshot(hits: list[SearchHit]) -> dict[str, SearchHit]:
    return {h.id: attrs.evolve(h, scores=dict(h.scores), ranks=dict(h.ranks)) for h in hits}


class RerankerConformance:
    @pytest.fixture
    def backend(self):  # pragma: no cover - the subclass provides it
        raise NotImplementedError("provide a `backend` fixture returning your reranker")

    def test_implements_the_protocol(self, backend):
        assert isinstance(backend, Reranker)

    def test_returns_at_most_limit_hits_it_was_given(self, backend):
        hits = make_hits()
        out = backend.rerank(QUERY, hits, limit=3)
        assert len(out) <= 3, f"asked for 3 hits, got {len(out)}"
        assert {h.id for h in out} <= {h.id for h in hits}, "returned an id it was not given"
        assert len({h.id for h in out}) == len(out), "returned an id twice"

    @pytest.mark.parametrize("limit", [1, 3, len(TEXTS), len(TEXTS) + 4])
    def test_drops_only_what_limit_asks(self, backend, limit):
        out = backend.rerank(QUERY, make_hits(), limit=limit)
        assert len(out) == min(limit, len(TEXTS)), (
            f"limit {limit} of {len(TEXTS)} hits must give {min(limit, len(TEXTS))}, got "
            f"{[h.id for h in out]}"
        )

    def test_keeps_entries_and_the_retrievers_scores(self, backend):
        hits = make_hits()
        given = _snapshot(hits)
        out = backend.rerank(QUERY, hits, limit=len(hits))
        for hit in out:
            before = given[hit.id]
            assert hit.entry is not None and hit.entry.id == hit.id
            assert hit.entry.memory == before.entry.memory
            for label, score in before.scores.items():
                assert hit.scores.get(label) == score, f"{hit.id}: scores[{label!r}] lost"
            for label, rank in before.ranks.items():
                assert hit.ranks.get(label) == rank, f"{hit.id}: ranks[{label!r}] lost"

    def test_best_first(self, backend):
        hits = make_hits()
        assert hits[0].id == "e0"  # the retrievers agree: e0 is the query itself
        out = [h.id for h in backend.rerank(QUERY, hits, limit=len(hits))]
        assert "e0" in out, f"the exact match was dropped: {out}"
        after = [i for i in UNRELATED if i in out and out.index(i) < out.index("e0")]
        assert not after, f"hits sharing no word with the query ranked above its exact match: {out}"

    def test_its_own_scores_do_not_increase(self, backend):
        hits = make_hits()
        fused = {h.id: h.score for h in hits}
        out = backend.rerank(QUERY, hits, limit=len(hits))
        if all(h.score == fused[h.id] for h in out):
            pytest.skip("the reranker keeps the fused scores; its order is checked elsewhere")
        scores = [h.score for h in out]
        assert scores == sorted(scores, reverse=True), (
            f"not best first by its own scores: {[(h.id, h.score) for h in out]}"
        )

    def test_a_smaller_limit_cuts_the_same_ranking(self, backend):
        full = [h.id for h in backend.rerank(QUERY, make_hits(), limit=len(TEXTS))]
        for limit in range(1, len(TEXTS)):
            top = [h.id for h in backend.rerank(QUERY, make_hits(), limit=limit)]
            assert top == full[:limit], f"limit {limit} gave {top}; the full ranking is {full}"

    def test_empty_input(self, backend):
        assert list(backend.rerank(QUERY, [], limit=5)) == []
