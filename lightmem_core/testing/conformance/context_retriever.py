"""Conformance suite for ``context_retriever`` backends (lexical indexes such as BM25).

Subclass :class:`ContextRetrieverConformance` in your plugin's tests and provide a fixture::

    import pytest
    from lightmem_core.testing.conformance.context_retriever import ContextRetrieverConformance

    class TestMyRetriever(ContextRetrieverConformance):
        @pytest.fixture
        def backend(self, tmp_path):
            return MyRetriever(...)      # a fresh, EMPTY index, one per test

Fixtures the subclass provides:

``backend`` (required, function scope)
    A new, empty :class:`~lightmem_hookspecs.ContextRetriever`. The suite indexes its own
    records into it. Each test needs its own instance (the suite closes it at the end).

``persistent`` (class attribute, default ``False``) and ``make_backend`` (fixture)
    For an index that keeps its data in files: set ``persistent = True`` and provide
    ``make_backend``, a callable returning a NEW instance on the same storage as ``backend``.
    The reopen tests then close an index and check a new instance on its storage: the records,
    their payloads (filters after a reopen), replaced texts (no stale words after a re-index)
    and deletions are all there.

``exact_words`` (class attribute, default ``True``)
    Whether the retriever returns only records sharing a word with the query. Set it to
    ``False`` for a fuzzy retriever (typo-tolerant, n-gram, semantic): the tests that a record
    sharing no word is not returned are skipped, and a query must find the records that share
    its words first, before any fuzzy match.

Every test here checks the protocol's contract, not a ranking function: results are
``(id, float)`` pairs, best first, at most ``limit``; a record sharing no word with the query
is not returned; every field of :class:`~lightmem_hookspecs.SearchFilter` is honoured exactly as
:meth:`SearchFilter.matches` defines it; ``index`` replaces a record with the same id;
``delete`` ignores unknown ids; ``count`` follows all of it; the same query twice gives the same
answer. Texts are plain lower-case English words, so any reasonable tokenizer works.

Where the index also offers :class:`~lightmem_hookspecs.TextBulkLoad` (``bulk_index``), the
suite checks it too (skipped otherwise): it reads a generator of chunks to the end, returns the
number of records, and leaves what ``index`` of each chunk would (every record searchable,
ranked and filtered, counted; into an index with records, an id's old text and payload
replaced, the others kept). Where it offers :class:`~lightmem_hookspecs.TextReset`
(``reset``): the index is empty afterwards (a sound one moved nowhere: ``None``), indexes and
finds records again, and (persistent indexes) stays empty across a reopen. Where it offers
:class:`~lightmem_hookspecs.IndexCompaction` (``compact``): after deletions, the records kept
are counted and found in the same order with the same filters, also after a reopen, the
deleted ones still gone.
"""

from __future__ import annotations

import math

import pytest
from lightmem_hookspecs import (
    ContextRetriever,
    IndexCompaction,
    IndexRecord,
    SearchFilter,
    TextBulkLoad,
    TextReset,
)

from .capabilities import EveryStrategyChecks, require
from .filters import FILTER_PAYLOADS, FILTERS, payload

#: Every record mentions "garden", so a "garden" query reaches all of them and only the filter
#: decides which come back.
_GARDEN = {
    "f1": "alice planted tomatoes in the garden",
    "f2": "bob watered the garden roses",
    "f3": "alice fenced the garden in",
    "f4": "the garden shed needs paint",
    "f5": "bob dug a garden pond",
    "f6": "garden party planned for june",
    "f7": "compost bins for the garden",
    "f8": "a garden gnome went missing",
}
FILTER_RECORDS: tuple[IndexRecord, ...] = tuple(
    IndexRecord(entry_id, _GARDEN[entry_id], data) for entry_id, data in FILTER_PAYLOADS
)

RANKING_RECORDS: tuple[IndexRecord, ...] = (
    IndexRecord("r1", "my dog rex likes long walks in the park", payload()),
    IndexRecord("r2", "the stock market fell sharply on monday", payload()),
    IndexRecord("r3", "we cooked pasta with fresh basil for dinner", payload()),
    IndexRecord("r4", "rex the dog chased a ball and the dog barked", payload()),
    IndexRecord("r5", "the weather in lisbon was warm and sunny", payload()),
)


class ContextRetrieverConformance(EveryStrategyChecks):
    """The ``ContextRetriever`` contract. Needs a ``backend`` fixture: a fresh, empty index."""

    persistent: bool = False
    exact_words: bool = True

    @pytest.fixture(autouse=True)
    def _close_backend(self, backend):
        self._made = [backend]
        yield
        for made in reversed(self._made):
            made.close()

    @pytest.fixture
    def make_backend(self):
        """Override for a persistent index: a new instance on the storage of ``backend``."""
        return None

    def reopen(self, old, make_backend):
        """Close ``old`` and return a new instance on its storage."""
        if not self.persistent:
            pytest.skip("the index keeps its data only as long as the instance")
        assert make_backend is not None, "a persistent index must provide make_backend"
        old.close()
        again = make_backend()
        self._made.append(again)
        return again

    def require_exact_words(self) -> None:
        if not self.exact_words:
            pytest.skip("a fuzzy retriever may return records sharing no word with the query")

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def ids(hits) -> list[str]:
        return [hit_id for hit_id, _ in hits]

    @pytest.fixture
    def garden(self, backend):
        backend.index(list(FILTER_RECORDS))
        return backend

    @pytest.fixture
    def ranked(self, backend):
        backend.index(list(RANKING_RECORDS))
        return backend

    # -- shape -------------------------------------------------------------------------------

    def test_implements_protocol(self, backend):
        assert isinstance(backend, ContextRetriever)

    def test_empty_index(self, backend):
        assert backend.count() == 0
        assert backend.search("anything at all", limit=5) == []

    def test_hits_are_id_float_pairs_best_first(self, ranked):
        hits = ranked.search("dog rex", limit=10)
        assert hits, "a query sharing words with records must find them"
        for hit in hits:
            assert isinstance(hit, tuple) and len(hit) == 2
            assert isinstance(hit[0], str)
            assert isinstance(hit[1], float) and math.isfinite(hit[1])
        scores = [score for _, score in hits]
        assert scores == sorted(scores, reverse=True)

    def test_most_relevant_first(self, ranked):
        assert self.ids(ranked.search("stock market", limit=3))[0] == "r2"
        assert self.ids(ranked.search("pasta basil dinner", limit=3))[0] == "r3"
        assert set(self.ids(ranked.search("dog rex", limit=2))) == {"r1", "r4"}

    def test_records_without_a_query_word_are_not_returned(self, ranked):
        self.require_exact_words()
        assert set(self.ids(ranked.search("dog", limit=10))) == {"r1", "r4"}
        assert ranked.search("xylophone quasar", limit=10) == []

    def test_limit(self, garden):
        assert len(garden.search("garden", limit=3)) == 3
        assert len(garden.search("garden", limit=1)) == 1
        assert len(garden.search("garden", limit=100)) == len(FILTER_RECORDS)

    def test_empty_and_punctuation_queries_find_nothing(self, ranked):
        assert ranked.search("", limit=5) == []
        assert ranked.search("   ", limit=5) == []
        assert ranked.search("?!.,;", limit=5) == []

    def test_same_query_same_answer(self, garden):
        first = garden.search("garden alice", limit=10)
        assert garden.search("garden alice", limit=10) == first
        assert garden.search("garden", limit=10) == garden.search("garden", limit=10)

    def test_no_filter_equals_empty_filter(self, garden):
        assert garden.search("garden", limit=10) == garden.search(
            "garden", limit=10, filter=SearchFilter()
        )

    # -- filters -----------------------------------------------------------------------------

    @pytest.mark.parametrize("name", list(FILTERS))
    def test_filter_semantics(self, garden, name):
        flt = FILTERS[name]
        expected = {r.id for r in FILTER_RECORDS if flt.matches(r.id, r.payload)}
        got = self.ids(garden.search("garden", limit=100, filter=flt))
        assert len(got) == len(set(got)), "an id was returned twice"
        assert set(got) == expected

    def test_filter_applies_before_limit(self, garden):
        # Only f5 belongs to u2 and speaks as Bob; it must be found even with limit=1.
        hits = garden.search("garden", limit=1, filter=SearchFilter(user_id="u2", speaker="Bob"))
        assert self.ids(hits) == ["f5"]

    # -- index / delete / count --------------------------------------------------------------

    def test_count_follows_index_and_delete(self, backend):
        backend.index(list(RANKING_RECORDS[:3]))
        assert backend.count() == 3
        backend.index(list(RANKING_RECORDS[3:]))
        assert backend.count() == len(RANKING_RECORDS)
        backend.delete(["r1", "r2"])
        assert backend.count() == len(RANKING_RECORDS) - 2

    def test_index_replaces_same_id(self, backend):
        backend.index([IndexRecord("x", "the cat sleeps on the sofa", payload(speaker="Ann"))])
        backend.index([IndexRecord("x", "the parrot sings every morning", payload(speaker="Ben"))])
        assert backend.count() == 1
        assert backend.search("cat sofa", limit=5) == []
        assert self.ids(backend.search("parrot", limit=5)) == ["x"]
        # The payload is replaced too.
        assert backend.search("parrot", limit=5, filter=SearchFilter(speaker="Ann")) == []
        assert self.ids(backend.search("parrot", limit=5, filter=SearchFilter(speaker="Ben"))) == [
            "x"
        ]

    def test_duplicate_ids_in_one_call_keep_the_last(self, backend):
        backend.index(
            [
                IndexRecord("d", "violin lessons on tuesday", payload()),
                IndexRecord("d", "cello lessons on friday", payload()),
            ]
        )
        assert backend.count() == 1
        assert self.ids(backend.search("cello", limit=5)) == ["d"]
        assert backend.search("violin", limit=5) == []

    def test_delete_removes_from_results(self, ranked):
        ranked.delete(["r4"])
        found = self.ids(ranked.search("dog rex", limit=10))
        assert "r4" not in found and found[:1] == ["r1"]
        if self.exact_words:
            assert found == ["r1"]
        ranked.delete(["r1"])
        assert not {"r1", "r4"} & set(self.ids(ranked.search("dog rex", limit=10)))

    def test_delete_unknown_ids_is_a_no_op(self, ranked):
        before = ranked.search("dog", limit=10)
        ranked.delete(["does-not-exist"])
        ranked.delete([])
        assert ranked.count() == len(RANKING_RECORDS)
        assert ranked.search("dog", limit=10) == before

    def test_delete_everything_then_reindex(self, ranked):
        ranked.delete([r.id for r in RANKING_RECORDS])
        assert ranked.count() == 0
        assert ranked.search("dog", limit=10) == []
        ranked.index([RANKING_RECORDS[0]])
        assert self.ids(ranked.search("dog", limit=10)) == ["r1"]

    def test_index_after_search_is_visible(self, backend):
        backend.index([RANKING_RECORDS[0]])
        assert self.ids(backend.search("dog", limit=10)) == ["r1"]
        backend.index([RANKING_RECORDS[3]])
        assert set(self.ids(backend.search("dog", limit=10))) == {"r1", "r4"}

    def test_index_empty_list(self, backend):
        backend.index([])
        assert backend.count() == 0

    def test_many_records_in_many_calls(self, backend):
        for start in range(0, 300, 25):
            backend.index(
                [
                    IndexRecord(f"m{i}", f"note number {i} about topic{i % 7}", payload())
                    for i in range(start, start + 25)
                ]
            )
        assert backend.count() == 300
        hits = self.ids(backend.search("topic3", limit=100))
        expected = {f"m{i}" for i in range(300) if i % 7 == 3}
        assert set(hits[: len(expected)]) == expected, "the records with the word come first"
        if self.exact_words:
            assert len(hits) == len(expected)

    def test_close(self, ranked):
        ranked.close()  # closing twice (here and in the fixture) must be harmless

    # -- the optional bulk load (``TextBulkLoad``) -------------------------------------------

    def require_bulk_index(self, backend) -> None:
        require(backend, TextBulkLoad, "the index does not offer bulk_index")

    def test_bulk_index_into_an_empty_index(self, backend):
        self.require_bulk_index(backend)
        records = [*FILTER_RECORDS, *RANKING_RECORDS]
        read: list[int] = []

        def chunks():
            for part in (records[:3], records[3:9], [], records[9:]):
                read.append(len(part))
                yield list(part)

        assert backend.bulk_index(chunks()) == len(records)
        assert read == [3, 6, 0, len(records) - 9], "the chunks were not all read"
        assert backend.count() == len(records)
        assert self.ids(backend.search("stock market", limit=3))[0] == "r2"
        assert set(self.ids(backend.search("dog rex", limit=2))) == {"r1", "r4"}
        if self.exact_words:
            assert set(self.ids(backend.search("dog", limit=20))) == {"r1", "r4"}
        for name, flt in FILTERS.items():
            expected = {r.id for r in FILTER_RECORDS if flt.matches(r.id, r.payload)}
            got = self.ids(backend.search("garden", limit=100, filter=flt))
            assert set(got) == expected and len(got) == len(expected), name

    def test_bulk_index_into_an_index_with_records(self, ranked):
        self.require_bulk_index(ranked)
        moved = IndexRecord("r4", "the parrot sings every morning", payload(speaker="Ben"))
        assert ranked.bulk_index(iter([[moved], list(FILTER_RECORDS)])) == 1 + len(FILTER_RECORDS)
        assert ranked.count() == len(RANKING_RECORDS) + len(FILTER_RECORDS)
        assert self.ids(ranked.search("parrot", limit=5)) == ["r4"]
        assert "r4" not in self.ids(ranked.search("dog rex", limit=10)), "the old text is kept"
        assert self.ids(ranked.search("dog rex", limit=10))[:1] == ["r1"]
        assert ranked.search("parrot", limit=5, filter=SearchFilter(speaker="Alice")) == []
        hits = ranked.search("garden", limit=100, filter=SearchFilter(user_id="u2"))
        assert set(self.ids(hits)) == {
            r.id for r in FILTER_RECORDS if r.payload.get("user_id") == "u2"
        }
        assert ranked.bulk_index(iter([])) == 0
        assert ranked.count() == len(RANKING_RECORDS) + len(FILTER_RECORDS)

    # -- the optional reset (``TextReset``) -------------------------------------------------

    def require_reset(self, backend) -> None:
        require(backend, TextReset, "the index does not offer reset")

    def test_reset_empties_the_index(self, ranked, make_backend):
        self.require_reset(ranked)
        assert ranked.reset() is None, "a sound index was reported as moved aside"
        assert ranked.count() == 0
        assert ranked.search("dog rex", limit=10) == []
        ranked.index([RANKING_RECORDS[1]])
        assert ranked.count() == 1
        assert self.ids(ranked.search("stock market", limit=3)) == ["r2"]
        assert ranked.search("dog rex", limit=10) == []
        if self.persistent:
            again = self.reopen(ranked, make_backend)
            assert again.count() == 1
            assert again.search("dog rex", limit=10) == []

    # -- the optional compaction (``IndexCompaction``) --------------------------------------

    def require_compact(self, backend) -> None:
        require(backend, IndexCompaction, "the index does not offer compact")

    def test_compact_keeps_the_records_left(self, garden, make_backend):
        self.require_compact(garden)
        gone = {"f1", "f4"}
        garden.delete(sorted(gone))
        kept = [r for r in FILTER_RECORDS if r.id not in gone]
        before = self.ids(garden.search("garden", limit=100))
        garden.compact()
        assert garden.count() == len(kept)
        assert self.ids(garden.search("garden", limit=100)) == before
        assert not gone & set(before), "a deleted record is still found"
        for name, flt in FILTERS.items():
            expected = {r.id for r in kept if flt.matches(r.id, r.payload)}
            got = self.ids(garden.search("garden", limit=100, filter=flt))
            assert set(got) == expected and len(got) == len(expected), name
        garden.compact()  # twice is harmless
        if self.persistent:
            again = self.reopen(garden, make_backend)
            assert again.count() == len(kept)
            assert self.ids(again.search("garden", limit=100)) == before

    # -- persistence (``persistent = True`` and ``make_backend``) ---------------------------

    def test_reopen_keeps_the_records(self, ranked, make_backend):
        before = ranked.search("dog rex", limit=10)
        again = self.reopen(ranked, make_backend)
        assert again.count() == len(RANKING_RECORDS)
        assert self.ids(again.search("dog rex", limit=10)) == self.ids(before)
        assert self.ids(again.search("stock market", limit=3))[0] == "r2"

    @pytest.mark.parametrize("name", list(FILTERS))
    def test_filter_after_reopen(self, garden, make_backend, name):
        again = self.reopen(garden, make_backend)
        flt = FILTERS[name]
        expected = {r.id for r in FILTER_RECORDS if flt.matches(r.id, r.payload)}
        assert set(self.ids(again.search("garden", limit=100, filter=flt))) == expected

    def test_a_reindexed_text_is_not_found_by_its_old_words_after_reopen(
        self, backend, make_backend
    ):
        backend.index([IndexRecord("x", "the cat sleeps on the sofa", payload(speaker="Ann"))])
        again = self.reopen(backend, make_backend)
        again.index([IndexRecord("x", "the parrot sings every morning", payload(speaker="Ben"))])
        assert again.search("cat sofa", limit=5) == [], "the old text is still indexed"
        third = self.reopen(again, make_backend)
        assert third.count() == 1
        assert third.search("cat sofa", limit=5) == [], "the old text came back after a reopen"
        assert self.ids(third.search("parrot", limit=5)) == ["x"]
        assert third.search("parrot", limit=5, filter=SearchFilter(speaker="Ann")) == []

    def test_deletions_survive_a_reopen(self, ranked, make_backend):
        ranked.delete(["r4", "r2"])
        again = self.reopen(ranked, make_backend)
        assert again.count() == len(RANKING_RECORDS) - 2
        assert not {"r2", "r4"} & set(self.ids(again.search("dog rex stock market", limit=10)))
        again.index([RANKING_RECORDS[3]])
        third = self.reopen(again, make_backend)
        assert "r4" in self.ids(third.search("dog rex", limit=10))
