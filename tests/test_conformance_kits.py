"""The conformance suites of the testing kit run against small real implementations.

They must pass on a correct backend and fail on a broken one (the `Broken*` checks below).
"""

from __future__ import annotations

import attrs
import pytest
from lightmem_hookspecs import SearchFilter, SearchHit

from lightmem_core.testing.conformance.graph_memory import (
    GARDEN,
    GARDEN_ENTITIES,
    GARDEN_ENTRIES,
    GraphMemoryConformance,
)
from lightmem_core.testing.conformance.reranker import QUERY, RerankerConformance, make_hits
from lightmem_core.testing.reference import MemoryGraph, words


class OverlapReranker:
    """Reorders hits by word overlap with the query."""

    def rerank(self, query, hits, *, limit):
        return sorted(hits, key=lambda h: -overlap(query, h))[:limit]


class ScoringReranker:
    """Sets each hit's score to its share of the query's words (copies), best first."""

    def rerank(self, query, hits, *, limit):
        q = set(words(query))
        scored = [attrs.evolve(h, score=overlap(query, h) / max(len(q), 1)) for h in hits]
        return sorted(scored, key=lambda h: -h.score)[:limit]


def overlap(query, hit):
    return len(set(words(query)) & set(words(hit.entry.memory)))


class TestOverlapReranker(RerankerConformance):
    @pytest.fixture
    def backend(self):
        return OverlapReranker()


class TestScoringReranker(RerankerConformance):
    @pytest.fixture
    def backend(self):
        return ScoringReranker()


class TestMemoryGraph(GraphMemoryConformance):
    @pytest.fixture
    def make_backend(self, tmp_path):
        return lambda: MemoryGraph(tmp_path / "graph.json")


class TestMemoryGraphInMemory(GraphMemoryConformance):
    persistent = False

    @pytest.fixture
    def make_backend(self):
        return MemoryGraph


class WorstFirst:
    def rerank(self, query, hits, *, limit):
        return sorted(hits, key=lambda h: overlap(query, h))[:limit]


class DropsUnrelated:
    def rerank(self, query, hits, *, limit):
        return [h for h in OverlapReranker().rerank(query, hits, limit=limit) if overlap(query, h)]


class OneTooMany:
    def rerank(self, query, hits, *, limit):
        return OverlapReranker().rerank(query, hits, limit=limit + 1)


class Inventing:
    def rerank(self, query, hits, *, limit):
        return [SearchHit(id="zzz", score=1.0), *hits][:limit]


class RepeatsTheBest:
    def rerank(self, query, hits, *, limit):
        best = OverlapReranker().rerank(query, hits, limit=limit)
        return [best[0], *best[:-1]] if best else best


class LosesRetrieverScores:
    def rerank(self, query, hits, *, limit):
        ranked = OverlapReranker().rerank(query, hits, limit=limit)
        return [SearchHit(id=h.id, score=h.score, entry=h.entry) for h in ranked]


class ScoresButKeepsTheOrder:
    def rerank(self, query, hits, *, limit):
        return [attrs.evolve(h, score=float(overlap(query, h))) for h in hits][:limit]


class CutsBeforeRanking:
    def rerank(self, query, hits, *, limit):
        return OverlapReranker().rerank(query, hits[:limit], limit=limit)


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        (WorstFirst, "test_best_first"),
        (DropsUnrelated, "test_drops_only_what_limit_asks"),
        (OneTooMany, "test_returns_at_most_limit_hits_it_was_given"),
        (OneTooMany, "test_drops_only_what_limit_asks"),
        (Inventing, "test_returns_at_most_limit_hits_it_was_given"),
        (RepeatsTheBest, "test_returns_at_most_limit_hits_it_was_given"),
        (LosesRetrieverScores, "test_keeps_entries_and_the_retrievers_scores"),
        (ScoresButKeepsTheOrder, "test_its_own_scores_do_not_increase"),
        (CutsBeforeRanking, "test_a_smaller_limit_cuts_the_same_ranking"),
    ],
)
def test_reranker_suite_rejects_a_broken_reranker(broken, check):
    suite = RerankerConformance()
    test = getattr(suite, check)
    with pytest.raises(AssertionError):
        if check == "test_drops_only_what_limit_asks":
            for limit in (1, 3, 6, 10):
                test(broken(), limit)
        else:
            test(broken())


def test_the_reranker_suite_hands_over_fused_hits_best_first():
    hits = make_hits()
    assert [h.id for h in hits] == ["e0", "e1", "e2", "e3", "e5", "e4"]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].ranks == {"embedding": 1, "bm25": 1}
    assert "bm25" not in hits[2].ranks and hits[2].scores["embedding"] > 0
    assert not set(words(QUERY)) & set(words(hits[2].entry.memory))


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
