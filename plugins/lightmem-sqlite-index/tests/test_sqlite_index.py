"""Both SQLite indexes: persistence, one transaction per call, readers beside a writer, the core;
and ``sqlite-bm25`` scoring exactly as the ``BM25`` backend."""

from __future__ import annotations

import sqlite3
import threading
import time

import attrs
import pytest
from lightmem_hookspecs import BackendContext, IndexRecord, SearchFilter
from lightmem_sqlite_index import bm25 as bm25_module
from lightmem_sqlite_index import fts as fts_module
from lightmem_sqlite_index.bm25 import SQLiteBM25Retriever
from lightmem_sqlite_index.fts import SQLiteFTSRetriever
from lightmem_sqlite_index.plugin import (
    SQLiteBM25Options,
    SQLiteFTSOptions,
    build_sqlite_bm25,
    build_sqlite_fts,
)

from lightmem_core import LightMemory
from lightmem_core.plugins import PluginHost
from lightmem_core.testing.reference import ReferencePlugin

TURNS = [
    IndexRecord("t1", "My dog is called Rex and he loves the beach", {"speaker": "Ann"}),
    IndexRecord("t2", "The stock market fell sharply today", {"speaker": "Ben"}),
    IndexRecord("t3", "I went hiking in the Alps last summer", {"speaker": "Ann"}),
    IndexRecord("t4", "Rex chewed my new shoes again", {"speaker": "Ann"}),
    IndexRecord("t5", "We painted the kitchen blue over the weekend", {"speaker": "Ben"}),
    IndexRecord("t6", "Our cat hides under the bed when it storms", {"speaker": "Ben"}),
]


KINDS = {
    "sqlite-bm25": (SQLiteBM25Options, build_sqlite_bm25, "lexical_bm25.sqlite3", bm25_module),
    "sqlite-fts": (SQLiteFTSOptions, build_sqlite_fts, "lexical_fts.sqlite3", fts_module),
}


@pytest.fixture(params=list(KINDS))
def kind(request):
    return request.param


@pytest.fixture
def make(kind):
    options_cls, build, _, _ = KINDS[kind]

    def make(tmp_path, **options):
        return build(options_cls(**options), BackendContext(memory_dir=str(tmp_path)))

    return make


@pytest.fixture
def db_file(kind):
    return KINDS[kind][2]


def ids(hits):
    return [i for i, _ in hits]


def test_questions_find_their_answers_like_bm25(tmp_path, make):
    index = make(tmp_path)
    index.index(TURNS)
    assert ids(index.search("What is my dog's name?", limit=1)) == ["t1"]
    assert ids(index.search("When did Ann go hiking?", limit=1)) == ["t3"]
    assert ids(index.search("what did they paint", limit=1)) == ["t5"]
    # The rarer term weighs more: the turn with "rex" and "beach" first.
    assert ids(index.search("rex beach", limit=3)) == ["t1", "t4"]
    assert all(score > 0 for _, score in index.search("rex beach", limit=3))
    index.close()


def test_stemming_and_stopwords_follow_the_options(tmp_path, make):
    stemmed = make(tmp_path / "a")
    plain = make(tmp_path / "b", use_stemming=False, stopwords=False)
    for index in (stemmed, plain):
        index.index(TURNS)
    assert ids(stemmed.search("hikes", limit=3)) == ["t3"]
    assert plain.search("hikes", limit=3) == []
    assert stemmed.search("the and of my", limit=5) == []
    assert plain.search("the", limit=10)
    stemmed.close()
    plain.close()


def test_query_syntax_is_never_interpreted(tmp_path, make):
    index = make(tmp_path, tokenizer="whitespace", stopwords=False, use_stemming=False)
    index.index([IndexRecord("q", 'say "hello" NOT AND OR near* (x)', {})])
    for query in ['"hello"', "NOT", "near*", "(x)", 'a"b', "OR AND"]:
        index.search(query, limit=5)  # no FTS5 syntax error
    assert ids(index.search('"hello"', limit=5)) == ["q"]
    index.close()


def test_cjk_text_is_searchable(tmp_path, make):
    index = make(tmp_path)
    index.index(
        [IndexRecord("c", "我喜欢在东京吃寿司", {}), IndexRecord("d", "Sushi in Osaka", {})]
    )
    assert ids(index.search("寿司", limit=5)) == ["c"]
    index.close()


def test_persisted_and_reopened_without_reindexing(tmp_path, make):
    index = make(tmp_path)
    index.index(TURNS)
    index.delete(["t2"])
    before = index.search("rex kitchen cat", limit=10)
    index.close()
    again = make(tmp_path)
    assert again.count() == len(TURNS) - 1
    assert again.search("rex kitchen cat", limit=10) == before
    again.close()


@pytest.mark.parametrize("cls", [SQLiteBM25Retriever, SQLiteFTSRetriever])
def test_a_failing_call_changes_nothing(tmp_path, cls):
    calls = {"n": 0}

    def analyzer(text: str) -> list[str]:
        calls["n"] += 1
        if "boom" in text:
            raise RuntimeError("analyser failed")
        return text.lower().split()

    index = cls(tmp_path / "index.sqlite3", analyzer)
    index.index([IndexRecord("a", "apple pie", {})])
    with pytest.raises(RuntimeError):
        index.index([IndexRecord("b", "banana bread", {}), IndexRecord("c", "boom", {})])
    assert index.count() == 1 and index.search("banana", limit=5) == []
    index.close()


def test_a_writer_killed_mid_transaction_leaves_the_last_commit(tmp_path, make, db_file):
    index = make(tmp_path)
    index.index(TURNS[:2])
    # Another connection writes half a change and dies without committing.
    raw = sqlite3.connect(tmp_path / db_file, isolation_level=None)
    raw.execute("BEGIN IMMEDIATE")
    raw.execute("DELETE FROM docs")
    raw.close()  # closing without COMMIT rolls back, as a crash would
    index.close()
    again = make(tmp_path)
    assert again.count() == 2
    assert ids(again.search("dog", limit=5)) == ["t1"]
    again.close()


def test_readers_do_not_wait_for_a_writer(tmp_path, make, db_file):
    index = make(tmp_path)
    index.index(TURNS[:3])
    raw = sqlite3.connect(tmp_path / db_file, isolation_level=None)
    raw.execute("BEGIN IMMEDIATE")  # holds the write lock, an uncommitted change inside
    raw.execute("DELETE FROM docs")
    result: dict = {}

    def read() -> None:
        started = time.perf_counter()
        result["hits"] = index.search("dog", limit=5)
        result["count"] = index.count()
        result["seconds"] = time.perf_counter() - started

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(10)
    raw.execute("ROLLBACK")
    raw.close()
    assert ids(result["hits"]) == ["t1"] and result["count"] == 3
    assert result["seconds"] < 5  # not the 30 s busy timeout of a waiting reader
    index.close()


def test_searches_from_many_threads_while_indexing(tmp_path, make):
    index = make(tmp_path)
    index.index(TURNS)
    errors: list[BaseException] = []

    def search_loop() -> None:
        try:
            for _ in range(50):
                assert "t1" in ids(index.search("dog rex", limit=10))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=search_loop) for _ in range(3)]
    for thread in threads:
        thread.start()
    for i in range(100):
        index.index([IndexRecord(f"n{i}", f"note {i} about gardening", {})])
    for thread in threads:
        thread.join()
    assert not errors
    assert index.count() == len(TURNS) + 100
    index.close()


def test_filters_with_values_of_other_types(tmp_path, make):
    index = make(tmp_path)
    index.index(
        [
            IndexRecord("a", "garden party", {"topic_id": 2, "speaker": ["odd", "list"]}),
            IndexRecord("b", "garden gnome", {"topic_id": "2", "time_stamp": 5}),
        ]
    )
    assert ids(index.search("garden", limit=5, filter=SearchFilter(topic_id=2))) == ["a"]
    assert ids(index.search("garden", limit=5, filter=SearchFilter(time_gte=5))) == ["b"]
    assert index.search("garden", limit=5, filter=SearchFilter(speaker="odd")) == []
    index.close()


def test_a_file_of_another_format_is_refused(tmp_path, make, db_file, kind):
    index = make(tmp_path)
    index.close()
    raw = sqlite3.connect(tmp_path / db_file)
    with raw:
        raw.execute("UPDATE meta SET value = 'something-else/9' WHERE key = 'schema'")
    raw.close()
    with pytest.raises(RuntimeError, match="lightmem reindex"):
        make(tmp_path)
    assert KINDS[kind][3].SCHEMA_VERSION != "something-else/9"


def test_closed_index_refuses_searches(tmp_path, make):
    index = make(tmp_path)
    index.close()
    index.close()
    with pytest.raises(RuntimeError, match="closed"):
        index.search("dog", limit=3)


def test_options_are_validated():
    with pytest.raises(ValueError, match="index_path"):
        SQLiteFTSOptions(index_path="  ")
    assert attrs.asdict(SQLiteFTSOptions())["index_path"] == "lexical_fts.sqlite3"


def _memory(tmp_path) -> LightMemory:
    host = PluginHost()
    host.register(ReferencePlugin(), "reference")
    return LightMemory(
        {
            "memory_dir": str(tmp_path),
            "text_embedder": {"model_name": "hash"},
            "embedding_retriever": {"model_name": "exact", "configs": {"persist": True}},
            "retrieve_strategy": "hybrid",
        },
        host=host,
    )


def test_the_default_memory_uses_it_and_reopens_without_reindexing(tmp_path, monkeypatch):
    memory = _memory(tmp_path)
    assert isinstance(memory.text_index, SQLiteBM25Retriever)
    memory.add_memory(
        [
            {"role": "user", "content": "My dog Rex loves the beach", "speaker_name": "Ann"},
            {"role": "user", "content": "I paint landscapes on Sundays", "speaker_name": "Ann"},
        ],
        force_segment=True,
        force_extract=True,
    )
    first = [h.id for h in memory.search("Rex beach", limit=2, strategy="context")]
    memory.close()

    def refuse(self, records):
        raise AssertionError(f"re-indexed {len(records)} records on open")

    monkeypatch.setattr(SQLiteBM25Retriever, "index", refuse)
    again = _memory(tmp_path)
    assert [h.id for h in again.search("Rex beach", limit=2, strategy="context")] == first
    assert (tmp_path / "lexical_bm25.sqlite3").exists()
    again.close()


# -- sqlite-bm25 scores as BM25 does --------------------------------------------------------


def _corpus(n: int) -> list[IndexRecord]:
    words = "dog cat rex beach park market stock pasta basil lisbon porto hiking alps paint"
    vocab = words.split()
    return [
        IndexRecord(
            f"r{i}",
            " ".join(vocab[(i * 7 + j * 3) % len(vocab)] for j in range(1 + i % 9)),
            {"user_id": f"u{i % 3}", "time_stamp": float(i)},
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("merge_after", [1, 3, 16])
def test_scores_equal_the_bm25_backend_through_adds_updates_and_deletes(tmp_path, merge_after):
    # the other plugin is the reference here only: installed beside this one, or skipped
    BM25Retriever = pytest.importorskip("lightmem_bm25.index").BM25Retriever
    ours = build_sqlite_bm25(
        SQLiteBM25Options(merge_after=merge_after), BackendContext(memory_dir=str(tmp_path))
    )
    reference = BM25Retriever()
    records = _corpus(120)
    for lo in range(0, 120, 7):  # many small calls: many posting rows, merges
        for index in (ours, reference):
            index.index(records[lo : lo + 7])
    changes = [IndexRecord("r5", "porto porto lisbon", {"user_id": "u9"})]
    for index in (ours, reference):
        index.index(changes)
        index.delete(["r1", "r2", "r50", "nope"])
    assert ours.count() == reference.count() == 117
    for query in ("dog rex", "porto", "stock market pasta", "lisbon porto alps hiking"):
        for flt in (None, SearchFilter(user_id="u1"), SearchFilter(time_gte=60.0)):
            got = ours.search(query, limit=15, filter=flt)
            want = reference.search(query, limit=15, filter=flt)
            assert [i for i, _ in got] == [i for i, _ in want], (query, flt)
            assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-5)
    ours.close()


def test_posting_rows_stay_few(tmp_path):
    index = build_sqlite_bm25(
        SQLiteBM25Options(merge_after=4), BackendContext(memory_dir=str(tmp_path))
    )
    for i in range(60):
        index.index([IndexRecord(f"d{i}", "common words here", {})])
    with index.db.read() as conn:
        rows = conn.execute("SELECT max(n) FROM (SELECT count(*) AS n FROM postings GROUP BY term)")
        assert rows.fetchone()[0] <= 5
    assert len(index.search("common", limit=100)) == 60
    index.close()


def test_an_update_interrupted_before_indexing_is_caught_up_on_open(tmp_path):
    memory = _memory(tmp_path)
    memory.add_memory(
        [{"role": "user", "content": "I live in Paris", "speaker_name": "Ann"}],
        force_segment=True,
        force_extract=True,
    )
    entry = memory.get_all()[0]
    # The record store commits the new text; the process dies before the indexes hear of it.
    memory.store.update_entry_text(entry.id, "I live in Berlin now", "moved")
    memory.close()
    again = _memory(tmp_path)
    assert [h.id for h in again.search("Berlin", limit=3, strategy="context")] == [entry.id]
    assert again.search("Paris", limit=3, strategy="context") == []
    again.close()


def words(text: str) -> list[str]:
    return text.lower().split()


def test_a_format_1_file_is_migrated_in_place_with_the_same_results(tmp_path):
    path = tmp_path / "lexical_bm25.sqlite3"
    index = SQLiteBM25Retriever(path, words)
    index.index(TURNS)
    before = index.search("Rex loves the beach", limit=6)
    index.close()
    # Rewrite the file in format 1: postings in a WITHOUT ROWID table keyed by (term, seg).
    raw = sqlite3.connect(path)
    with raw:
        raw.execute(
            "CREATE TABLE old (term TEXT NOT NULL, seg INTEGER NOT NULL, data BLOB NOT NULL, "
            "PRIMARY KEY (term, seg)) WITHOUT ROWID"
        )
        raw.execute("INSERT INTO old SELECT term, seg, data FROM postings")
        raw.execute("DROP TABLE postings")
        raw.execute("ALTER TABLE old RENAME TO postings")
        raw.execute("UPDATE meta SET value = 'lightmem-sqlite-bm25/1' WHERE key = 'schema'")
    raw.close()
    index = SQLiteBM25Retriever(path, words)
    assert index.search("Rex loves the beach", limit=6) == before
    index.index([IndexRecord("t7", "Rex found a crab on the beach", {"speaker": "Ann"})])
    assert index.search("crab", limit=1)[0][0] == "t7"
    index.close()
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == (
        bm25_module.SCHEMA_VERSION
    )
    (sql,) = raw.execute("SELECT sql FROM sqlite_master WHERE name = 'postings'").fetchone()
    assert "WITHOUT ROWID" not in sql
    raw.close()


def test_reset_empties_a_sound_file_and_sets_a_damaged_one_aside(tmp_path, make, db_file):
    index = make(tmp_path)
    index.index(TURNS)
    assert index.search("rex", limit=5)
    assert index.reset() is None  # sound: started again empty, nothing kept
    assert index.count() == 0 and index.search("rex", limit=5) == []
    index.index(TURNS[:2])
    assert ids(index.search("rex", limit=5)) == ["t1"]
    index.close()

    path = tmp_path / db_file
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\xff" * (len(data) - page)  # every page but the first: garbage
    path.write_bytes(bytes(data))
    damaged = make(tmp_path)  # the first page is sound: opens
    moved = damaged.reset()
    assert moved == tmp_path / f"{db_file}.damaged-1"
    assert moved.read_bytes() == bytes(data)  # kept as it was
    assert damaged.count() == 0
    damaged.index(TURNS)
    assert ids(damaged.search("rex", limit=5))[0] in {"t1", "t4"}
    damaged.close()


@pytest.mark.parametrize("spread", [10, 10_000_000])
def test_scores_summed_per_document_by_counting_or_by_sorting_agree(spread):
    """Dense rowids (common terms) are summed by one counting pass, rowids spread far beyond
    the postings' number by a sort: both give each distinct rowid, ascending, its summed
    score."""
    import numpy as np
    from lightmem_sqlite_index.bm25 import _sum_by_doc

    rng = np.random.default_rng(spread)
    docs = rng.integers(1, 500 * spread, 5_000)
    scores = rng.random(5_000)
    distinct, summed = _sum_by_doc(docs, scores)
    expected = {}
    for doc, score in zip(docs.tolist(), scores.tolist(), strict=True):
        expected[doc] = expected.get(doc, 0.0) + score
    assert distinct.tolist() == sorted(expected)
    assert summed.tolist() == pytest.approx([expected[d] for d in sorted(expected)])


@pytest.mark.parametrize("seed", range(4))
def test_a_filtered_search_returns_the_best_of_the_records_that_pass(tmp_path, seed):
    """Filtered searches pick their slices from the candidates left, or read the records
    that pass through the speaker index when few do: either way the result is the
    unfiltered ranking kept to the records that pass, ties by id."""
    import random

    rng = random.Random(seed)
    texts = ["rex dog park", "rex dog", "dog park walk", "beach walk"]  # ties by the hundred
    records = [
        IndexRecord(
            f"r{i:04d}",
            rng.choice(texts),
            # Ann says half of it; Hal one record in a hundred
            {"speaker": rng.choices(["Ann", "Ben", "Cy", "Hal"], weights=[50, 30, 19, 1])[0]},
        )
        for i in range(3000)
    ]
    index = build_sqlite_bm25(SQLiteBM25Options(), BackendContext(memory_dir=str(tmp_path)))
    index.index(records)
    read_through_the_index = []
    passing = index._passing

    def spied(conn, where, params, most):
        found = passing(conn, where, params, most)
        if found is not None:
            read_through_the_index.append(params)
        return found

    index._passing = spied
    speaker_of = {r.id: r.payload["speaker"] for r in records}
    everything = index.search("rex dog park", limit=len(records))
    for speaker in ("Ann", "Cy", "Hal"):
        for limit in (1, 10, 300):
            kept = [hit for hit in everything if speaker_of[hit[0]] == speaker]
            found = index.search("rex dog park", limit=limit, filter=SearchFilter(speaker=speaker))
            assert found == kept[:limit], (speaker, limit)
    assert ["Hal"] in read_through_the_index  # the rare speaker's records, read at once
    assert ["Ann"] not in read_through_the_index  # half pass: the first slice is enough
    index.close()
