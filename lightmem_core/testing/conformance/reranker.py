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
* only hits it was given, each once, with the entry, the retrievers' ``scores`` / ``ranks`` and
  the graph ``paths`` it came with (same objects or evolved copies);
* the query decides the order: asked with the text of a hit the fusion ranked low, that hit
  comes before the hits sharing no word with it (a reranker that ignores the query fails);
* every score it returns is a finite number (no NaN, no infinity);
* best first: a hit whose text is the query word for word is never put after hits that share
  no word with the query, when the retrievers ranked it first too; when the reranker sets its
  own ``score``, the scores it returns do not increase;
* a smaller ``limit`` gives the first hits of the larger answer (rank first, then cut);
* an empty list gives an empty list.
"""

from __future__ import annotations

import math

import attrs
import pytest
from lightmem_hookspecs import MemoryEntry, Reranker, SearchHit, TopOnly

from .capabilities import CloseableChecks, require

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
#: TEXTS[5] word for word: the fusion ranks it fifth; e0, e1, e2 and e4 share no word with it.
OTHER_QUERY = "moved house in lisbon last may"
OTHER_UNRELATED = ("e0", "e1", "e2", "e4")
#: The graph retriever reached e0 through this relation (weight 0.4 in the fusion).
E0_PATH = ["Rex -learned-> swimming"]


def make_hits() -> list[SearchHit]:
    """Six hits as reciprocal-rank fusion of three retrievers hands them over, best first.

    ``score`` is the fused score; ``scores`` / ``ranks`` hold each retriever's own score and
    1-based rank (a hit the lexical index did not return has no ``bm25`` key); the graph
    retriever reached e0 only, and its ``paths`` say how. The order is e0, e1, e2, e3, e5, e4.
    """
    orders = {"embedding": [0, 1, 2, 3, 5, 4], "bm25": [0, 1], "graph": [0]}
    weights = {"embedding": 1.0, "bm25": 1.0, "graph": 0.4}
    own = {"embedding": 1.0, "bm25": 10.0, "graph": 2.0}
    hits = []
    for i, text in enumerate(TEXTS):
        scores: dict[str, float] = {}
        ranks: dict[str, int] = {}
        for label, order in orders.items():
            if i in order:
                ranks[label] = order.index(i) + 1
                scores[label] = own[label] - 0.1 * ranks[label]
        hits.append(
            SearchHit(
                id=f"e{i}",
                score=sum(weights[label] / (_RRF_K + r) for label, r in ranks.items()),
                entry=MemoryEntry(id=f"e{i}", memory=text),
                scores=scores,
                ranks=ranks,
                paths={"graph": list(E0_PATH)} if "graph" in ranks else {},
            )
        )
    return sorted(hits, key=lambda h: -h.score)


def _snapshot(hits: list[SearchHit]) -> dict[str, SearchHit]:
    return {
        h.id: attrs.evolve(
            h,
            scores=dict(h.scores),
            ranks=dict(h.ranks),
            paths={k: list(v) for k, v in h.paths.items()},
        )
        for h in hits
    }


class RerankerConformance(CloseableChecks):
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
            for label, path in before.paths.items():
                assert hit.paths.get(label) == path, f"{hit.id}: paths[{label!r}] lost"

    def test_the_query_decides_the_order(self, backend):
        hits = make_hits()
        assert [h.id for h in hits].index("e5") == 4  # the fusion ranked it low
        out = [h.id for h in backend.rerank(OTHER_QUERY, hits, limit=len(hits))]
        assert "e5" in out, f"the exact match of the query was dropped: {out}"
        above = [i for i in OTHER_UNRELATED if i in out and out.index(i) < out.index("e5")]
        assert not above, (
            f"asked {OTHER_QUERY!r}, hits sharing no word with it ranked above its exact "
            f"match e5: {out} (does the reranker read the query?)"
        )

    @pytest.mark.parametrize("query", [QUERY, OTHER_QUERY])
    def test_scores_are_finite(self, backend, query):
        for hit in backend.rerank(query, make_hits(), limit=len(TEXTS)):
            assert isinstance(hit.score, int | float) and math.isfinite(hit.score), (
                f"{hit.id}: score {hit.score!r} is not a finite number"
            )

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

    def test_top_only_answers_from_the_first_limit_hits(self, backend):
        require(backend, TopOnly, "the reranker does not declare top_only")
        assert isinstance(backend.top_only, bool), f"top_only is {backend.top_only!r}"
        if not backend.top_only:
            return
        for query in (QUERY, OTHER_QUERY):
            for limit in range(1, len(TEXTS)):
                whole = [h.id for h in backend.rerank(query, make_hits(), limit=limit)]
                first = [h.id for h in backend.rerank(query, make_hits()[:limit], limit=limit)]
                assert whole == first, (
                    f"top_only, yet limit {limit} over all hits gave {whole} and over the "
                    f"first {limit} gave {first}"
                )

    def test_empty_input(self, backend):
        assert list(backend.rerank(QUERY, [], limit=5)) == []
