"""postgres-fts beyond the conformance suite: BM25 scores as computed by hand from the same
lexemes, per-user statistics kept through replacements and deletions, a table from before the
statistics counted when opened, and a large user searched through the GIN index."""

from __future__ import annotations

import math
from collections import Counter

import psycopg
import pytest
from lightmem_hookspecs import BackendContext, IndexRecord, SearchFilter
from lightmem_postgres.plugin import PostgresFTSOptions, build_postgres_fts

TEXTS = {
    "a": ("alice", "the red kayak on the lake, a red paddle"),
    "b": ("alice", "a kayak trip with my sister"),
    "c": ("alice", "my sister paints the lake at sunset"),
    "d": ("alice", "coffee and bread in the morning"),
    "e": ("bob", "red red red kayak kayak kayak"),
    "f": ("bob", "bread"),
}


def _records(texts=TEXTS):
    return [IndexRecord(i, text, {"user_id": user}) for i, (user, text) in texts.items()]


@pytest.fixture
def fts(postgres_dsn, schema, tmp_path):
    def make(**options):
        opts = PostgresFTSOptions(dsn=postgres_dsn, schema=schema, language="simple", **options)
        return build_postgres_fts(opts, BackendContext(memory_dir=str(tmp_path)))

    made = []

    def factory(**options):
        made.append(make(**options))
        return made[-1]

    yield factory
    for r in made:
        r.close()


def _bm25(texts, query, user, k1=1.5, b=0.75):
    """Lucene BM25 over the user's documents; ``simple`` lexemes: lower-cased words."""
    docs = {i: Counter(w.strip(",.").lower() for w in t.split()) for i, (u, t) in texts.items()}
    docs = {i: d for i, d in docs.items() if user is None or texts[i][0] == user}
    n = len(docs)
    avg = sum(len(d) for d in docs.values()) / n  # length: distinct lexemes
    scores = {}
    for i, d in docs.items():
        s = 0.0
        for term, rep in Counter(query.lower().split()).items():
            df = sum(1 for x in docs.values() if term in x)
            if not d.get(term):
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            tf = d[term]
            s += rep * idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avg))
        if s:
            scores[i] = s
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


@pytest.mark.parametrize("scan_below", [5000, 0])  # a user's index, or the GIN index
def test_scores_are_bm25_over_the_users_documents(fts, scan_below):
    retriever = fts(scan_below=scan_below)
    retriever.index(_records())
    for query in ("red kayak", "sister lake", "kayak kayak bread", "bread"):
        for user in ("alice", "bob", None):
            got = retriever.search(query, limit=10, filter=SearchFilter(user_id=user))
            want = _bm25(TEXTS, query, user)
            assert [i for i, _ in got] == [i for i, _ in want], (query, user)
            assert [s for _, s in got] == pytest.approx([s for _, s in want]), (query, user)


def test_statistics_follow_replacements_and_deletions(fts):
    retriever = fts()
    retriever.index(_records())
    changed = dict(TEXTS)
    changed["a"] = ("alice", "a blue canoe")  # replaced
    changed["b"] = ("bob", "a kayak trip with my sister")  # moved to another user
    del changed["d"]
    retriever.index(_records({k: changed[k] for k in ("a", "b")}))
    retriever.delete(["d", "unknown"])
    again = fts()  # a second instance reads the same statistics
    for query in ("red kayak", "sister lake", "canoe bread"):
        for user in ("alice", "bob"):
            got = again.search(query, limit=10, filter=SearchFilter(user_id=user))
            want = _bm25(changed, query, user)
            assert [s for _, s in got] == pytest.approx([s for _, s in want]), (query, user)
            assert [i for i, _ in got] == [i for i, _ in want]


def test_a_table_without_statistics_gets_them_counted(fts, postgres_dsn, schema):
    retriever = fts()
    retriever.index(_records())
    retriever.close()
    table = retriever.table
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:  # as version 1 left it
        conn.execute(f'DROP TABLE "{schema}"."{table}_terms"')
        conn.execute(
            f'UPDATE "{schema}".lightmem_meta SET value = %s WHERE key = %s',
            ('{"version": 1, "language": "simple"}', f"fts:{table}"),
        )
    reopened = fts()
    got = reopened.search("red kayak", limit=10, filter=SearchFilter(user_id="alice"))
    want = _bm25(TEXTS, "red kayak", "alice")
    assert [s for _, s in got] == pytest.approx([s for _, s in want])


def test_common_terms_are_dropped_past_the_candidate_bound(fts):
    texts = {f"x{i}": ("u", f"common words here number{i}") for i in range(30)}
    texts["rare"] = ("u", "common rare")
    retriever = fts(max_candidates=5)
    retriever.index(_records(texts))
    # "rare" (1 document) is kept, "common" (31) would pass the bound: only "rare" ranks
    assert [i for i, _ in retriever.search("common rare", limit=10)] == ["rare"]
    assert len(fts().search("common rare", limit=50)) == 31  # the default bound keeps both


def test_a_table_that_grew_is_analyzed(fts, postgres_dsn, schema):
    retriever = fts()
    retriever.index(_records())  # a few rows: no ANALYZE
    table = retriever.table

    def analyzed():
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            return {
                name: n
                for name, n in conn.execute(
                    "SELECT relname, analyze_count FROM pg_stat_user_tables "
                    "WHERE schemaname = %s AND analyze_count > 0",
                    (schema,),
                )
            }

    assert table not in analyzed()
    many = {f"m{i}": ("carol", f"note number {i} about gardens") for i in range(1200)}
    retriever.index(_records(many))  # past the first thousand rows: the planner learns them
    assert {table, f"{table}_terms"} <= set(analyzed())


def _terms(postgres_dsn, schema, table):
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        return sorted(conn.execute(f'SELECT * FROM "{schema}"."{table}_terms" WHERE df <> 0'))


@pytest.mark.parametrize("scan_below", [5000, 0])
def test_a_bulk_load_into_an_empty_table_scores_and_counts_as_indexing_does(
    fts, postgres_dsn, schema, scan_below
):
    records = _records()
    loaded = fts(scan_below=scan_below)
    # In chunks, an id given twice (the last wins, as with index())
    stale = IndexRecord("a", "stale words", {"user_id": "alice"})
    assert loaded.bulk_index(iter([[stale, *records[:3]], records[3:]])) == len(records)
    for query in ("red kayak", "sister lake", "kayak kayak bread", "stale"):
        for user in ("alice", "bob", None):
            got = loaded.search(query, limit=10, filter=SearchFilter(user_id=user))
            want = _bm25(TEXTS, query, user)
            assert [i for i, _ in got] == [i for i, _ in want], (query, user)
            assert [s for _, s in got] == pytest.approx([s for _, s in want]), (query, user)
    counted = _terms(postgres_dsn, schema, loaded.table)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:  # both indexes rebuilt
        indexes = {
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,)
            )
        }
    assert {f"{loaded.table}_gin", f"{loaded.table}_user"} <= indexes
    loaded.close()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'TRUNCATE "{schema}"."{loaded.table}", "{schema}"."{loaded.table}_terms"')
    one_by_one = fts()
    one_by_one.index(records)
    assert _terms(postgres_dsn, schema, loaded.table) == counted


def test_a_bulk_load_into_a_table_with_rows_replaces_them_as_indexing_does(fts):
    retriever = fts()
    retriever.index(_records({k: TEXTS[k] for k in ("a", "d", "e")}))
    changed = dict(TEXTS)
    changed["a"] = ("alice", "a blue canoe")
    assert retriever.bulk_index(iter([_records(changed)])) == len(changed)
    for query in ("red kayak", "canoe bread"):
        for user in ("alice", "bob"):
            got = retriever.search(query, limit=10, filter=SearchFilter(user_id=user))
            want = _bm25(changed, query, user)
            assert [i for i, _ in got] == [i for i, _ in want], (query, user)
            assert [s for _, s in got] == pytest.approx([s for _, s in want]), (query, user)
