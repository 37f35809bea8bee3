"""The conformance suites of the testing kit run against small real implementations.

They must pass on a correct backend and fail on a broken one (the `Broken*` checks below).
"""

from __future__ import annotations

import json
import os

import attrs
import pytest
from lightmem_hookspecs import (
    IndexCompaction,
    IndexRecord,
    SearchFilter,
    SearchHit,
    TextBulkLoad,
    TextReset,
    VectorBulkLoad,
    VectorRecreate,
)

from lightmem_core.testing.conformance.context_retriever import (
    RANKING_RECORDS as LEXICAL_RANKING_RECORDS,
)
from lightmem_core.testing.conformance.context_retriever import ContextRetrieverConformance
from lightmem_core.testing.conformance.embedding_retriever import (
    DIM as VECTOR_DIM,
)
from lightmem_core.testing.conformance.embedding_retriever import (
    FILTER_RECORDS as VECTOR_FILTER_RECORDS,
)
from lightmem_core.testing.conformance.embedding_retriever import (
    MODEL as VECTOR_MODEL,
)
from lightmem_core.testing.conformance.embedding_retriever import (
    RANKING_RECORDS as VECTOR_RANKING_RECORDS,
)
from lightmem_core.testing.conformance.embedding_retriever import (
    EmbeddingRetrieverConformance,
)
from lightmem_core.testing.conformance.graph_memory import (
    GARDEN,
    GARDEN_ENTITIES,
    GARDEN_ENTRIES,
    GraphMemoryConformance,
)
from lightmem_core.testing.conformance.reranker import (
    E0_PATH,
    QUERY,
    RerankerConformance,
    make_hits,
)
from lightmem_core.testing.reference import ExactVectorIndex, KeywordIndex, MemoryGraph, words


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


class KeepsTheFusedOrder:
    """Ignores the query: returns the fused order."""

    def rerank(self, query, hits, *, limit):
        return list(hits)[:limit]


class ByLength:
    """Ignores the query it is asked: ranks by overlap with the query it was tuned on, then
    the shortest memory first."""

    def rerank(self, query, hits, *, limit):
        ranked = sorted(hits, key=lambda h: (-overlap(QUERY, h), len(h.entry.memory)))
        return ranked[:limit]


class NaNScores:
    def rerank(self, query, hits, *, limit):
        ranked = OverlapReranker().rerank(query, hits, limit=limit)
        return [attrs.evolve(h, score=float("nan")) for h in ranked]


class DropsPaths:
    """Rebuilds each hit without its graph paths."""

    def rerank(self, query, hits, *, limit):
        ranked = OverlapReranker().rerank(query, hits, limit=limit)
        return [
            SearchHit(id=h.id, score=h.score, entry=h.entry, scores=h.scores, ranks=h.ranks)
            for h in ranked
        ]


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        (KeepsTheFusedOrder, "test_the_query_decides_the_order"),
        (ByLength, "test_the_query_decides_the_order"),
        (NaNScores, "test_scores_are_finite"),
        (DropsPaths, "test_keeps_entries_and_the_retrievers_scores"),
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
        elif check == "test_scores_are_finite":
            test(broken(), QUERY)
        else:
            test(broken())


def test_the_reranker_suite_hands_over_fused_hits_best_first():
    hits = make_hits()
    assert [h.id for h in hits] == ["e0", "e1", "e2", "e3", "e5", "e4"]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].ranks == {"embedding": 1, "bm25": 1, "graph": 1}
    assert hits[0].paths == {"graph": E0_PATH} and all(not h.paths for h in hits[1:])
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


# -- the vector store suite: reopen keeps the payloads' types -------------------------------


class TestExactVectorIndex(EmbeddingRetrieverConformance):
    @pytest.fixture
    def make_backend(self, tmp_path):
        return lambda: ExactVectorIndex(tmp_path / "index.json")


class StringTopicIndex(ExactVectorIndex):
    """Reads every payload value back from its file as a string (a store with untyped
    payload columns): filters on ``topic_id`` or times fail after a reopen."""

    def open(self, *, model_name, dimension):
        super().open(model_name=model_name, dimension=dimension)
        self.records = {
            i: attrs.evolve(
                r, payload={k: None if v is None else str(v) for k, v in r.payload.items()}
            )
            for i, r in self.records.items()
        }


def test_vector_suite_rejects_a_store_whose_topic_comes_back_as_a_string(tmp_path):
    suite = EmbeddingRetrieverConformance()

    def run(cls, folder):
        made = []

        def new_backend():
            made.append(cls(tmp_path / folder / "index.json"))
            return made[-1]

        (tmp_path / folder).mkdir()
        store = new_backend()
        store.open(model_name=VECTOR_MODEL, dimension=VECTOR_DIM)
        store.upsert(list(VECTOR_FILTER_RECORDS))
        suite.test_filter_after_reopen(store, new_backend, "topic")

    with pytest.raises(AssertionError):
        run(StringTopicIndex, "broken")
    run(ExactVectorIndex, "clean")


# -- the lexical suite: reopen tests, and an opt-out for fuzzy retrievers -------------------


class FileKeywordIndex(KeywordIndex):
    """The reference keyword index, kept in a JSON file: one line per ``index`` call, replayed
    in order on open (a later record of an id replaces the earlier one)."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        if path.exists():
            for line in path.read_text().splitlines():
                change = json.loads(line)
                if change["op"] == "index":
                    for r in change["records"]:
                        self._load(IndexRecord(r["id"], r["text"], r["payload"]))
                else:
                    for i in change["ids"]:
                        self.records.pop(i, None)

    def _load(self, record):
        self.records[record.id] = record

    def _log(self, change):
        with self.path.open("a") as f:
            f.write(json.dumps(change) + "\n")

    def index(self, records):
        super().index(records)
        self._log({"op": "index", "records": [attrs.asdict(r) for r in records]})

    def delete(self, ids):
        super().delete(ids)
        self._log({"op": "delete", "ids": list(ids)})


class StaleAfterReindex(FileKeywordIndex):
    """Replays its file keeping the FIRST text of an id: correct until a reopen."""

    def _load(self, record):
        self.records.setdefault(record.id, record)


class TestFileKeywordIndex(ContextRetrieverConformance):
    persistent = True

    @pytest.fixture
    def make_backend(self, tmp_path):
        return lambda: FileKeywordIndex(tmp_path / "keywords.jsonl")

    @pytest.fixture
    def backend(self, make_backend):
        return make_backend()


def _edits_within_one(a, b):
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


class TypoTolerantIndex(KeywordIndex):
    """Matches a query word within one edit (words of four letters or more); an exact word
    scores 2, a near one 1."""

    def search(self, query, *, limit, filter=None):
        f = filter or SearchFilter()
        q = set(words(query))
        scored = []
        for r in self.records.values():
            text = set(words(r.text))
            score = 0.0
            for w in q:
                if w in text:
                    score += 2.0
                elif len(w) >= 4 and any(_edits_within_one(w, t) for t in text if len(t) >= 4):
                    score += 1.0
            if score and f.matches(r.id, r.payload):
                scored.append((r.id, score))
        scored.sort(key=lambda p: (-p[1], p[0]))
        return scored[:limit]


class TestTypoTolerantIndex(ContextRetrieverConformance):
    exact_words = False

    @pytest.fixture
    def backend(self):
        return TypoTolerantIndex()


def test_a_typo_tolerant_index_passes_only_with_the_fuzzy_opt_out():
    index = TypoTolerantIndex()
    index.index(list(LEXICAL_RANKING_RECORDS))
    index.index([IndexRecord("near", "xylophones are loud", {})])
    assert [i for i, _ in index.search("xylophone", limit=5)] == ["near"]
    with pytest.raises(AssertionError):
        ContextRetrieverConformance().test_records_without_a_query_word_are_not_returned(index)


def test_lexical_suite_rejects_an_index_with_stale_text_after_a_reopen(tmp_path):
    suite = ContextRetrieverConformance()
    suite.persistent = True
    for cls, name, broken in ((StaleAfterReindex, "stale", True), (FileKeywordIndex, "ok", False)):
        path = tmp_path / f"{name}.jsonl"
        suite._made = []
        check = suite.test_a_reindexed_text_is_not_found_by_its_old_words_after_reopen
        if broken:
            with pytest.raises(AssertionError):
                check(cls(path), lambda cls=cls, path=path: cls(path))
        else:
            check(cls(path), lambda cls=cls, path=path: cls(path))


# -- the optional bulk loads: checked where an index offers them ----------------------------


class BulkVectorIndex(ExactVectorIndex):
    """The reference vector index with a one-pass load (``VectorBulkLoad``)."""

    def bulk_upsert(self, chunks):
        written = 0
        for chunk in chunks:
            for r in chunk:
                self._check_size(r.vector or (), f"the vector of {r.id!r}")
                self.records[r.id] = r
            written += len(chunk)
        self._save()
        return written


class FirstChunkOnlyVectorIndex(BulkVectorIndex):
    """Loads the first chunk and counts the rest without writing it."""

    def bulk_upsert(self, chunks):
        chunks = iter(chunks)
        written = super().bulk_upsert([next(chunks, [])])
        return written + sum(len(chunk) for chunk in chunks)


class BulkKeywordIndex(FileKeywordIndex):
    """The file-backed keyword index with a one-pass load (``TextBulkLoad``)."""

    def bulk_index(self, chunks):
        written = 0
        for chunk in chunks:
            self.index(list(chunk))
            written += len(chunk)
        return written


class KeepsOldTextsBulkIndex(BulkKeywordIndex):
    """Its bulk load adds records but leaves an id already indexed as it was."""

    def bulk_index(self, chunks):
        written = 0
        for chunk in chunks:
            self.index([r for r in chunk if r.id not in self.records])
            written += len(chunk)
        return written


class TestBulkVectorIndex(EmbeddingRetrieverConformance):
    @pytest.fixture
    def make_backend(self, tmp_path):
        return lambda: BulkVectorIndex(tmp_path / "index.json")


class TestBulkKeywordIndex(ContextRetrieverConformance):
    persistent = True

    @pytest.fixture
    def make_backend(self, tmp_path):
        return lambda: BulkKeywordIndex(tmp_path / "keywords.jsonl")

    @pytest.fixture
    def backend(self, make_backend):
        return make_backend()


def test_the_reference_indexes_offer_no_bulk_load_and_the_bulk_ones_do(tmp_path):
    assert not isinstance(ExactVectorIndex(None), VectorBulkLoad)
    assert not isinstance(KeywordIndex(), TextBulkLoad)
    assert isinstance(BulkVectorIndex(None), VectorBulkLoad)
    assert isinstance(BulkKeywordIndex(tmp_path / "k.jsonl"), TextBulkLoad)


def test_vector_suite_rejects_a_bulk_load_that_drops_chunks(tmp_path):
    suite = EmbeddingRetrieverConformance()

    def run(cls, name):
        backend = cls(tmp_path / f"{name}.json")
        backend.open(model_name=VECTOR_MODEL, dimension=VECTOR_DIM)
        suite.test_bulk_upsert_into_an_empty_store(backend)

    with pytest.raises(AssertionError):
        run(FirstChunkOnlyVectorIndex, "broken")
    run(BulkVectorIndex, "clean")


def test_text_suite_rejects_a_bulk_load_that_keeps_old_texts(tmp_path):
    suite = ContextRetrieverConformance()

    def run(cls, name):
        backend = cls(tmp_path / f"{name}.jsonl")
        backend.index(list(LEXICAL_RANKING_RECORDS))
        suite.test_bulk_index_into_an_index_with_records(backend)

    with pytest.raises(AssertionError):
        run(KeepsOldTextsBulkIndex, "broken")
    run(BulkKeywordIndex, "clean")


# -- recreate, reset and compaction: checked where a backend offers them --------------------


class CompactingVectorIndex(ExactVectorIndex):
    """The reference vector index with ``compact`` (``IndexCompaction``): its file rewritten
    from the records it holds."""

    def compact(self):
        self._save()


class CompactLosesARecord(CompactingVectorIndex):
    """Its compaction drops a record it should keep."""

    def compact(self):
        self.records.pop(sorted(self.records)[-1], None)
        self._save()


class RecreateKeepsTheRecords(ExactVectorIndex):
    """Its recreate takes the new model but keeps the old vectors."""

    def recreate(self, *, model_name, dimension):
        self.meta = {"model": model_name, "dims": dimension}
        self._save()


class ResettableKeywordIndex(FileKeywordIndex):
    """The file-backed keyword index with ``reset`` (``TextReset``) and ``compact``
    (``IndexCompaction``: its file rewritten as one line of the records it holds)."""

    def reset(self):
        self.records.clear()
        self.path.unlink(missing_ok=True)
        return None

    def compact(self):
        line = {"op": "index", "records": [attrs.asdict(r) for r in self.records.values()]}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(line) + "\n")
        os.replace(tmp, self.path)


class ResetKeepsTheFile(ResettableKeywordIndex):
    """Empties itself but leaves its file: a reopen brings the old records back."""

    def reset(self):
        self.records.clear()
        return None


class CompactingGraph(MemoryGraph):
    """The reference graph with ``compact`` (its file rewritten)."""

    def compact(self):
        self._save()


class TestCompactingVectorIndex(EmbeddingRetrieverConformance):
    @pytest.fixture
    def make_backend(self, tmp_path):
        return lambda: CompactingVectorIndex(tmp_path / "index.json")


class TestResettableKeywordIndex(ContextRetrieverConformance):
    persistent = True

    @pytest.fixture
    def make_backend(self, tmp_path):
        return lambda: ResettableKeywordIndex(tmp_path / "keywords.jsonl")

    @pytest.fixture
    def backend(self, make_backend):
        return make_backend()


class TestCompactingGraph(GraphMemoryConformance):
    @pytest.fixture
    def make_backend(self, tmp_path):
        return lambda: CompactingGraph(tmp_path / "graph.json")


def test_which_reference_backends_offer_recreate_reset_and_compact(tmp_path):
    assert isinstance(ExactVectorIndex(None), VectorRecreate)
    assert not isinstance(ExactVectorIndex(None), IndexCompaction)
    assert isinstance(CompactingVectorIndex(None), IndexCompaction)
    assert not isinstance(KeywordIndex(), TextReset | IndexCompaction)
    keywords = ResettableKeywordIndex(tmp_path / "k.jsonl")
    assert isinstance(keywords, TextReset) and isinstance(keywords, IndexCompaction)
    assert not isinstance(MemoryGraph(), IndexCompaction)
    assert isinstance(CompactingGraph(), IndexCompaction)


def test_vector_suite_rejects_a_recreate_or_a_compaction_that_keeps_the_wrong_records(
    tmp_path,
):
    suite = EmbeddingRetrieverConformance()

    def run(cls, name, check):
        def make():
            return cls(tmp_path / f"{name}.json")

        backend = make()
        backend.open(model_name=VECTOR_MODEL, dimension=VECTOR_DIM)
        if check == "recreate":
            backend.upsert(list(VECTOR_RANKING_RECORDS))
            suite.test_recreate_empties_the_collection_for_another_model(backend, make)
        else:
            backend.upsert(list(VECTOR_FILTER_RECORDS))
            suite.test_compact_keeps_the_records_left(backend, make)

    with pytest.raises(AssertionError):
        run(RecreateKeepsTheRecords, "keeps", "recreate")
    run(ExactVectorIndex, "recreated", "recreate")
    with pytest.raises(AssertionError):
        run(CompactLosesARecord, "loses", "compact")
    run(CompactingVectorIndex, "compacted", "compact")


def test_text_suite_rejects_a_reset_that_leaves_the_records_on_disk(tmp_path):
    suite = ContextRetrieverConformance()
    suite.persistent = True

    def run(cls, name):
        path = tmp_path / f"{name}.jsonl"
        backend = cls(path)
        suite._made = [backend]
        backend.index(list(LEXICAL_RANKING_RECORDS))
        suite.test_reset_empties_the_index(backend, lambda: cls(path))

    with pytest.raises(AssertionError):
        run(ResetKeepsTheFile, "kept")
    run(ResettableKeywordIndex, "reset")
