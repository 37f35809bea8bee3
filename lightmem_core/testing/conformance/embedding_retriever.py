"""Conformance suite for ``embedding_retriever`` backends (vector stores such as Qdrant).

Subclass :class:`EmbeddingRetrieverConformance` in your plugin's tests and provide a factory::

    import pytest
    from lightmem_core.testing.conformance.embedding_retriever import (
        EmbeddingRetrieverConformance,
    )

    class TestMyStore(EmbeddingRetrieverConformance):
        persistent = True              # False: data lives only as long as the instance

        @pytest.fixture
        def make_backend(self, tmp_path):
            return lambda: MyStore(path=tmp_path / "store")   # NOT opened

Fixtures and attributes the subclass provides:

``make_backend`` (required, function scope)
    A callable taking no arguments. Each call returns a NEW, NOT YET OPENED
    :class:`~lightmem_hookspecs.EmbeddingRetriever`. Within one test every call addresses the
    same storage (same directory, same collection), so for a persistent backend an instance
    made after another was closed sees what the first stored. Each test starts from fresh,
    empty storage (build it under ``tmp_path``). The suite opens and closes the instances;
    ``close()`` must be safe to call twice.

``persistent`` (class attribute, default ``True``)
    Whether data survives ``close()`` and a new instance. When ``False`` the reopen tests
    (data kept, another model or dimension refused, a refused open loses nothing) are skipped.

The suite itself provides ``backend``: ``make_backend()`` opened with :data:`MODEL` and
:data:`DIM` (8), closed after the test, and ``new_backend``, a wrapper of ``make_backend`` that
closes whatever it made at teardown.

What is checked: the object is an ``EmbeddingRetriever``; results are ``(id, float)`` pairs,
best first, at most ``limit``, scored by cosine similarity (vectors need not be normalised);
``upsert`` replaces vector and payload of an id; ``delete`` ignores unknown ids; ``count``
follows; every field of :class:`~lightmem_hookspecs.SearchFilter` is honoured exactly as
:meth:`SearchFilter.matches` defines it, ``exclude_ids`` included; any string works as an id;
a vector of the wrong size is refused; for persistent backends, reopening keeps the data and
the payloads' types (every filter gives the same answer after a reopen), and opening with
another model name or dimension is refused with an error naming both, without deleting
anything.

Where the store also offers :class:`~lightmem_hookspecs.VectorBulkLoad` (``bulk_upsert``), the
suite checks it too (skipped otherwise): it reads a generator of chunks to the end, returns the
number of records, and leaves what ``upsert`` of each chunk would (every record searchable
with its cosine and filters, counted; into a store with records, an id's vector and payload
replaced, the others kept). Where it offers :class:`~lightmem_hookspecs.VectorRecreate`
(``recreate``): the collection is empty afterwards, takes and finds vectors of the new
dimension, and (persistent stores) reopens with the new model and refuses the old one. Where
it offers :class:`~lightmem_hookspecs.IndexCompaction` (``compact``): after deletions, the
records kept are counted, found with the same scores and filters, and kept across a reopen,
the deleted ones still gone.
"""

from __future__ import annotations

import math
import random

import pytest
from lightmem_hookspecs import (
    EmbeddingRetriever,
    IndexCompaction,
    IndexRecord,
    SearchFilter,
    VectorBulkLoad,
    VectorRecreate,
)

from .capabilities import EveryStrategyChecks, require
from .filters import FILTER_PAYLOADS, FILTERS, payload

MODEL = "conformance-embedder-a"
OTHER_MODEL = "conformance-embedder-b"
DIM = 8


def axis(i: int, scale: float = 1.0) -> tuple[float, ...]:
    return tuple(scale if k == i else 0.0 for k in range(DIM))


def combine(*parts: tuple[float, tuple[float, ...]]) -> tuple[float, ...]:
    return tuple(sum(w * v[k] for w, v in parts) for k in range(DIM))


def cosine(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _near(i: int) -> tuple[float, ...]:
    """Vectors close to the query ``axis(0)``, each a little different, all with cosine > 0.9."""
    return combine((1.0, axis(0)), (0.05 * (i + 1), axis(1 + i % (DIM - 1))))


FILTER_QUERY = axis(0)

#: All close to FILTER_QUERY, so a search with a large limit reaches every one of them and
#: only the filter decides which come back.
_TEXTS = {
    "f1": "alice planted tomatoes",
    "f2": "bob watered the roses",
    "f3": "alice fenced the garden",
    "f4": "the shed needs paint",
    "f5": "bob dug a pond",
    "f6": "party planned for june",
    "f7": "compost bins",
    "f8": "a gnome went missing",
}
FILTER_RECORDS: tuple[IndexRecord, ...] = tuple(
    IndexRecord(entry_id, _TEXTS[entry_id], data, _near(i))
    for i, (entry_id, data) in enumerate(FILTER_PAYLOADS)
)

#: Known cosines to RANK_QUERY: r1 1.0, r2 0.894, r3 0.707, r4 0.0, r5 -0.707.
RANK_QUERY = axis(0)
RANKING_RECORDS: tuple[IndexRecord, ...] = (
    IndexRecord("r3", "three", payload(), combine((1.0, axis(0)), (1.0, axis(1)))),
    IndexRecord("r1", "one", payload(), axis(0)),
    IndexRecord("r5", "five", payload(), combine((-1.0, axis(0)), (1.0, axis(2)))),
    IndexRecord("r2", "two", payload(), combine((1.0, axis(0)), (0.5, axis(3)))),
    IndexRecord("r4", "four", payload(), axis(4)),
)
RANK_ORDER = ["r1", "r2", "r3", "r4", "r5"]

#: Ids of every shape an application or the core may use.
ODD_IDS = (
    "4f9c2d3e8a7b4c1d9e0f1a2b3c4d5e6f",
    "4f9c2d3e-8a7b-4c1d-9e0f-1a2b3c4d5e6f",
    "entry-1",
    "42",
    "ümlaut/ü 1 — with spaces",
    "x" * 300,
)


def _assert_well_formed(hits, limit: int) -> None:
    assert isinstance(hits, list)
    assert len(hits) <= limit
    for hit in hits:
        assert isinstance(hit, tuple) and len(hit) == 2
        assert isinstance(hit[0], str)
        assert isinstance(hit[1], float)
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True), f"not best first: {hits}"


class EmbeddingRetrieverConformance(EveryStrategyChecks):
    """The ``EmbeddingRetriever`` contract. Needs ``make_backend`` (see the module docstring)."""

    persistent: bool = True

    @pytest.fixture
    def new_backend(self, make_backend):
        made = []

        def build():
            instance = make_backend()
            made.append(instance)
            return instance

        yield build
        for instance in reversed(made):
            instance.close()

    @pytest.fixture
    def backend(self, new_backend):
        instance = new_backend()
        instance.open(model_name=MODEL, dimension=DIM)
        return instance

    @pytest.fixture
    def ranked(self, backend):
        backend.upsert(list(RANKING_RECORDS))
        return backend

    @pytest.fixture
    def garden(self, backend):
        backend.upsert(list(FILTER_RECORDS))
        return backend

    def reopen(self, old, new_backend, *, model_name: str = MODEL, dimension: int = DIM):
        old.close()
        instance = new_backend()
        instance.open(model_name=model_name, dimension=dimension)
        return instance

    def require_persistent(self) -> None:
        if not self.persistent:
            pytest.skip("the backend keeps data only as long as the instance")

    @staticmethod
    def ids(hits) -> list[str]:
        return [hit_id for hit_id, _ in hits]

    # -- the protocol ---------------------------------------------------------------------------

    def test_is_an_embedding_retriever(self, backend):
        assert isinstance(backend, EmbeddingRetriever)

    def test_a_new_collection_is_empty(self, backend):
        assert backend.count() == 0
        assert backend.search(list(RANK_QUERY), limit=5) == []

    def test_search_orders_by_cosine_similarity(self, ranked):
        hits = ranked.search(list(RANK_QUERY), limit=5)
        _assert_well_formed(hits, 5)
        assert self.ids(hits) == RANK_ORDER
        expected = {r.id: cosine(RANK_QUERY, r.vector) for r in RANKING_RECORDS}
        for hit_id, score in hits:
            assert score == pytest.approx(expected[hit_id], abs=1e-3)

    def test_scores_are_cosines_of_unnormalised_vectors(self, backend):
        scaled = [
            IndexRecord(r.id, r.text, r.payload, tuple(3.0 * x for x in r.vector))
            for r in RANKING_RECORDS
        ]
        backend.upsert(scaled)
        hits = backend.search([0.25 * x for x in RANK_QUERY], limit=5)
        assert self.ids(hits) == RANK_ORDER
        assert hits[0][1] == pytest.approx(1.0, abs=1e-3)
        assert hits[2][1] == pytest.approx(math.sqrt(0.5), abs=1e-3)

    def test_limit_caps_the_results(self, ranked):
        assert self.ids(ranked.search(list(RANK_QUERY), limit=2)) == RANK_ORDER[:2]
        assert self.ids(ranked.search(list(RANK_QUERY), limit=1)) == RANK_ORDER[:1]
        assert len(ranked.search(list(RANK_QUERY), limit=50)) == len(RANKING_RECORDS)

    def test_query_on_another_axis_changes_the_order(self, ranked):
        hits = ranked.search(list(axis(4)), limit=1)
        assert self.ids(hits) == ["r4"]

    def test_upsert_replaces_vector_andpayload(self, ranked):
        ranked.upsert([IndexRecord("r5", "five, moved", payload(user="u9"), axis(0, 2.0))])
        assert ranked.count() == len(RANKING_RECORDS)
        hits = ranked.search(list(RANK_QUERY), limit=2)
        assert set(self.ids(hits)) == {"r1", "r5"}
        assert hits[0][1] == pytest.approx(1.0, abs=1e-3)
        assert hits[1][1] == pytest.approx(1.0, abs=1e-3)
        only_u9 = ranked.search(list(RANK_QUERY), limit=10, filter=SearchFilter(user_id="u9"))
        assert self.ids(only_u9) == ["r5"]
        only_u1 = ranked.search(list(RANK_QUERY), limit=10, filter=SearchFilter(user_id="u1"))
        assert "r5" not in self.ids(only_u1)

    def test_delete_removes_records(self, ranked):
        ranked.delete(["r1", "r3"])
        assert ranked.count() == len(RANKING_RECORDS) - 2
        assert self.ids(ranked.search(list(RANK_QUERY), limit=10)) == ["r2", "r4", "r5"]

    def test_delete_ignores_unknown_ids_and_empty_lists(self, ranked):
        ranked.delete(["never-stored", "r2", "r2"])
        ranked.delete([])
        assert ranked.count() == len(RANKING_RECORDS) - 1
        assert "r2" not in self.ids(ranked.search(list(RANK_QUERY), limit=10))

    def test_delete_everything_then_add_again(self, ranked):
        ranked.delete([r.id for r in RANKING_RECORDS])
        assert ranked.count() == 0
        assert ranked.search(list(RANK_QUERY), limit=5) == []
        ranked.upsert([RANKING_RECORDS[1]])
        assert self.ids(ranked.search(list(RANK_QUERY), limit=5)) == ["r1"]

    def test_count_follows_upserts(self, backend):
        backend.upsert([])
        assert backend.count() == 0
        backend.upsert(list(RANKING_RECORDS[:2]))
        assert backend.count() == 2
        backend.upsert(list(RANKING_RECORDS))
        assert backend.count() == len(RANKING_RECORDS)

    @pytest.mark.parametrize("name", sorted(FILTERS))
    def test_filter(self, garden, name):
        search_filter = FILTERS[name]
        hits = garden.search(list(FILTER_QUERY), limit=50, filter=search_filter)
        _assert_well_formed(hits, 50)
        expected = {r.id for r in FILTER_RECORDS if search_filter.matches(r.id, r.payload)}
        assert set(self.ids(hits)) == expected
        assert len(hits) == len(expected), "an id came back twice"

    def test_filter_keeps_the_ranking(self, garden):
        everyone = garden.search(list(FILTER_QUERY), limit=50)
        user = garden.search(list(FILTER_QUERY), limit=50, filter=SearchFilter(user_id="u1"))
        assert self.ids(user) == [i for i in self.ids(everyone) if i in set(self.ids(user))]

    def test_filter_applies_before_the_limit(self, garden):
        hits = garden.search(list(FILTER_QUERY), limit=2, filter=SearchFilter(user_id="u2"))
        assert set(self.ids(hits)) == {"f4", "f5"}

    def test_exclude_ids_skips_the_best_hit(self, ranked):
        hits = ranked.search(
            list(RANK_QUERY), limit=2, filter=SearchFilter(exclude_ids=frozenset({"r1"}))
        )
        assert self.ids(hits) == ["r2", "r3"]

    def test_none_filter_equals_empty_filter(self, garden):
        a = garden.search(list(FILTER_QUERY), limit=50, filter=None)
        b = garden.search(list(FILTER_QUERY), limit=50, filter=SearchFilter())
        assert self.ids(a) == self.ids(b)
        assert len(a) == len(FILTER_RECORDS)

    def test_any_string_is_an_id(self, backend):
        records = [
            IndexRecord(entry_id, f"text {i}", payload(), axis(i % DIM))
            for i, entry_id in enumerate(ODD_IDS)
        ]
        backend.upsert(records)
        assert backend.count() == len(ODD_IDS)
        for i, entry_id in enumerate(ODD_IDS):
            hits = backend.search(list(axis(i % DIM)), limit=len(ODD_IDS))
            assert self.ids(hits)[0] == entry_id
        backend.delete([ODD_IDS[4]])
        hits = backend.search(list(axis(4)), limit=len(ODD_IDS))
        assert ODD_IDS[4] not in self.ids(hits)
        excluded = backend.search(
            list(axis(0)), limit=10, filter=SearchFilter(exclude_ids=frozenset({ODD_IDS[0]}))
        )
        assert ODD_IDS[0] not in self.ids(excluded)

    def test_many_records_in_one_upsert(self, backend):
        rng = random.Random(1234)
        vectors = [tuple(rng.gauss(0.0, 1.0) for _ in range(DIM)) for _ in range(1000)]
        backend.upsert(
            [IndexRecord(f"bulk-{i}", f"bulk {i}", payload(), v) for i, v in enumerate(vectors)]
        )
        assert backend.count() == 1000
        for i in (0, 555, 999):
            hits = backend.search(list(vectors[i]), limit=3)
            assert hits[0][0] == f"bulk-{i}"
            assert hits[0][1] == pytest.approx(1.0, abs=1e-3)

    def test_a_vector_of_the_wrong_size_is_refused(self, backend):
        with pytest.raises((ValueError, RuntimeError)):
            backend.upsert([IndexRecord("bad", "bad", payload(), (*axis(0), 1.0))])
        with pytest.raises((ValueError, RuntimeError)):
            backend.search([1.0] * (DIM - 1), limit=3)

    def test_close_twice_is_harmless(self, backend):
        backend.close()
        backend.close()

    # -- the optional bulk load (``VectorBulkLoad``) ----------------------------------------

    def require_bulk_upsert(self, backend) -> None:
        require(backend, VectorBulkLoad, "the store does not offer bulk_upsert")

    def test_bulk_upsert_into_an_empty_store(self, backend):
        self.require_bulk_upsert(backend)
        read: list[int] = []

        def chunks():
            for part in (FILTER_RECORDS[:3], (), FILTER_RECORDS[3:]):
                read.append(len(part))
                yield list(part)

        assert backend.bulk_upsert(chunks()) == len(FILTER_RECORDS)
        assert read == [3, 0, len(FILTER_RECORDS) - 3], "the chunks were not all read"
        assert backend.count() == len(FILTER_RECORDS)
        hits = backend.search(list(FILTER_QUERY), limit=50)
        _assert_well_formed(hits, 50)
        expected = {r.id: cosine(FILTER_QUERY, r.vector) for r in FILTER_RECORDS}
        assert sorted(self.ids(hits)) == sorted(expected)
        for hit_id, score in hits:
            assert score == pytest.approx(expected[hit_id], abs=1e-3)
        for name, search_filter in FILTERS.items():
            got = self.ids(backend.search(list(FILTER_QUERY), limit=50, filter=search_filter))
            wanted = {r.id for r in FILTER_RECORDS if search_filter.matches(r.id, r.payload)}
            assert set(got) == wanted and len(got) == len(wanted), name

    def test_bulk_upsert_of_many_records(self, backend):
        self.require_bulk_upsert(backend)
        rng = random.Random(4321)
        vectors = [tuple(rng.gauss(0.0, 1.0) for _ in range(DIM)) for _ in range(1000)]
        records = [
            IndexRecord(f"bulk-{i}", f"bulk {i}", payload(), v) for i, v in enumerate(vectors)
        ]
        chunks = (records[start : start + 300] for start in range(0, len(records), 300))
        assert backend.bulk_upsert(chunks) == len(records)
        assert backend.count() == len(records)
        for i in (0, 555, 999):
            hits = backend.search(list(vectors[i]), limit=3)
            assert hits[0][0] == f"bulk-{i}"
            assert hits[0][1] == pytest.approx(1.0, abs=1e-3)

    def test_bulk_upsert_into_a_store_with_records(self, ranked):
        self.require_bulk_upsert(ranked)
        moved = IndexRecord("r5", "five, moved", payload(user="u9"), axis(0, 2.0))
        assert ranked.bulk_upsert(iter([[moved], list(FILTER_RECORDS)])) == 1 + len(FILTER_RECORDS)
        assert ranked.count() == len(RANKING_RECORDS) + len(FILTER_RECORDS)
        hits = ranked.search(list(RANK_QUERY), limit=2)
        assert set(self.ids(hits)) == {"r1", "r5"}
        assert hits[1][1] == pytest.approx(1.0, abs=1e-3)
        only_u9 = ranked.search(list(RANK_QUERY), limit=50, filter=SearchFilter(user_id="u9"))
        assert self.ids(only_u9) == ["r5"]
        assert self.ids(ranked.search(list(axis(4)), limit=1)) == ["r4"]
        assert ranked.bulk_upsert(iter([])) == 0
        assert ranked.count() == len(RANKING_RECORDS) + len(FILTER_RECORDS)

    # -- the optional recreate (``VectorRecreate``) ------------------------------------------

    def require_recreate(self, backend) -> None:
        require(backend, VectorRecreate, "the store does not offer recreate")

    def test_recreate_empties_the_collection_for_another_model(self, ranked, new_backend):
        self.require_recreate(ranked)
        wide = DIM * 2
        ranked.recreate(model_name=OTHER_MODEL, dimension=wide)
        assert ranked.count() == 0
        query = tuple(1.0 if i == wide - 1 else 0.0 for i in range(wide))
        assert ranked.search(list(query), limit=5) == []
        ranked.upsert([IndexRecord("w1", "wide one", payload(), query)])
        assert ranked.count() == 1
        hits = ranked.search(list(query), limit=5)
        assert self.ids(hits) == ["w1"]
        assert hits[0][1] == pytest.approx(1.0, abs=1e-3)
        if not self.persistent:
            return
        again = self.reopen(ranked, new_backend, model_name=OTHER_MODEL, dimension=wide)
        assert again.count() == 1
        assert self.ids(again.search(list(query), limit=5)) == ["w1"]
        again.close()
        refused = new_backend()
        with pytest.raises((ValueError, RuntimeError)):
            refused.open(model_name=MODEL, dimension=DIM)

    # -- the optional compaction (``IndexCompaction``) --------------------------------------

    def require_compact(self, backend) -> None:
        require(backend, IndexCompaction, "the store does not offer compact")

    def test_compact_keeps_the_records_left(self, garden, new_backend):
        self.require_compact(garden)
        gone = {"f1", "f4"}
        garden.delete(sorted(gone))
        kept = [r for r in FILTER_RECORDS if r.id not in gone]
        before = garden.search(list(FILTER_QUERY), limit=50)
        garden.compact()
        assert garden.count() == len(kept)
        after = garden.search(list(FILTER_QUERY), limit=50)
        assert self.ids(after) == self.ids(before)
        assert not gone & set(self.ids(after)), "a deleted record came back"
        for (_, score), (_, was) in zip(after, before, strict=True):
            assert score == pytest.approx(was, abs=1e-3)
        for name, search_filter in FILTERS.items():
            got = self.ids(garden.search(list(FILTER_QUERY), limit=50, filter=search_filter))
            wanted = {r.id for r in kept if search_filter.matches(r.id, r.payload)}
            assert set(got) == wanted and len(got) == len(wanted), name
        garden.compact()  # twice is harmless
        if self.persistent:
            again = self.reopen(garden, new_backend)
            assert again.count() == len(kept)
            assert self.ids(again.search(list(FILTER_QUERY), limit=50)) == self.ids(before)

    # -- persistence (skipped where ``persistent`` is False) ------------------------------------

    def test_reopen_keeps_the_data(self, ranked, new_backend):
        self.require_persistent()
        again = self.reopen(ranked, new_backend)
        assert again.count() == len(RANKING_RECORDS)
        assert self.ids(again.search(list(RANK_QUERY), limit=5)) == RANK_ORDER
        again.upsert([IndexRecord("r6", "six", payload(), axis(5))])
        again.delete(["r5"])
        third = self.reopen(again, new_backend)
        assert third.count() == len(RANKING_RECORDS)
        assert self.ids(third.search(list(axis(5)), limit=1)) == ["r6"]
        assert "r5" not in self.ids(third.search(list(RANK_QUERY), limit=10))

    def test_reopen_with_another_model_is_refused(self, ranked, new_backend):
        self.require_persistent()
        with pytest.raises((ValueError, RuntimeError)) as info:
            self.reopen(ranked, new_backend, model_name=OTHER_MODEL)
        message = str(info.value)
        assert MODEL in message and OTHER_MODEL in message

    def test_reopen_with_another_dimension_is_refused(self, ranked, new_backend):
        self.require_persistent()
        with pytest.raises((ValueError, RuntimeError)) as info:
            self.reopen(ranked, new_backend, dimension=DIM * 2)
        message = str(info.value)
        assert str(DIM) in message and str(DIM * 2) in message

    def test_a_refused_open_deletes_nothing(self, ranked, new_backend):
        self.require_persistent()
        ranked.close()
        refused = new_backend()
        with pytest.raises((ValueError, RuntimeError)):
            refused.open(model_name=OTHER_MODEL, dimension=DIM * 2)
        refused.close()
        again = new_backend()
        again.open(model_name=MODEL, dimension=DIM)
        assert again.count() == len(RANKING_RECORDS)
        assert self.ids(again.search(list(RANK_QUERY), limit=5)) == RANK_ORDER

    @pytest.mark.parametrize("name", sorted(FILTERS))
    def test_filter_after_reopen(self, garden, new_backend, name):
        """Payloads read back from storage keep their types: a ``topic_id`` stored as an int
        still equals the filter's int, a time stamp still compares as a number."""
        self.require_persistent()
        again = self.reopen(garden, new_backend)
        search_filter = FILTERS[name]
        hits = again.search(list(FILTER_QUERY), limit=50, filter=search_filter)
        expected = {r.id for r in FILTER_RECORDS if search_filter.matches(r.id, r.payload)}
        assert set(self.ids(hits)) == expected

    def test_upsert_after_reopen_replaces_the_payload(self, garden, new_backend):
        self.require_persistent()
        again = self.reopen(garden, new_backend)
        again.upsert([IndexRecord("f1", "moved", payload("u9", topic=7), _near(0))])
        third = self.reopen(again, new_backend)
        topic = third.search(list(FILTER_QUERY), limit=50, filter=SearchFilter(topic_id=7))
        assert self.ids(topic) == ["f1"]
        old = third.search(list(FILTER_QUERY), limit=50, filter=SearchFilter(user_id="u1"))
        assert "f1" not in self.ids(old)
