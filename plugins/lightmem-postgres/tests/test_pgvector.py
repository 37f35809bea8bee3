"""pgvector beyond the conformance suite: a narrow filter still gets its full answer."""

from __future__ import annotations

import random

from lightmem_hookspecs import BackendContext, IndexRecord, SearchFilter
from lightmem_postgres.plugin import PgVectorOptions, build_pgvector


def test_a_narrow_filter_gets_limit_hits_the_walk_alone_would_miss(postgres_dsn, schema, tmp_path):
    rng = random.Random(7)
    dim = 16
    query = [1.0] + [0.0] * (dim - 1)
    crowd = [
        IndexRecord(
            f"c{i}", "", {"user_id": "crowd"}, [1.0] + [rng.gauss(0, 0.1) for _ in range(dim - 1)]
        )
        for i in range(2000)
    ]
    # Five entries of one user, all far from the query: no HNSW walk of ef 10 reaches them.
    few = [
        IndexRecord(
            f"s{i}", "", {"user_id": "small"}, [-1.0] + [rng.gauss(0, 0.1) for _ in range(dim - 1)]
        )
        for i in range(5)
    ]
    options = PgVectorOptions(dsn=postgres_dsn, schema=schema, ef_search=10)
    retriever = build_pgvector(options, BackendContext(memory_dir=str(tmp_path)))
    try:
        retriever.open(model_name="m", dimension=dim)
        retriever.upsert(crowd + few)
        hits = retriever.search(query, limit=5, filter=SearchFilter(user_id="small"))
        assert sorted(h for h, _ in hits) == [f"s{i}" for i in range(5)]
        assert all(score < 0 for _, score in hits)  # they are far, and still all found
        unfiltered = retriever.search(query, limit=10)
        assert len(unfiltered) == 10 and all(h.startswith("c") for h, _ in unfiltered)
    finally:
        retriever.close()


def test_auto_ranks_a_small_scope_exactly_and_walks_a_large_one(postgres_dsn, schema, tmp_path):
    rng = random.Random(3)
    dim = 8

    def vec():
        return [rng.gauss(0, 1) for _ in range(dim)]

    records = [IndexRecord(f"big{i}", "", {"user_id": "big"}, vec()) for i in range(400)]
    records += [IndexRecord(f"small{i}", "", {"user_id": "small"}, vec()) for i in range(40)]
    context = BackendContext(memory_dir=str(tmp_path))
    auto = build_pgvector(
        PgVectorOptions(dsn=postgres_dsn, schema=schema, exact_below=100, ef_search=200),
        context,
    )
    exact = build_pgvector(
        PgVectorOptions(dsn=postgres_dsn, schema=schema, scoped_search="exact"), context
    )
    try:
        for r in (auto, exact):
            r.open(model_name="m", dimension=dim)
        auto.upsert(records)
        for _ in range(5):
            query = vec()
            for user in ("big", "small"):
                flt = SearchFilter(user_id=user)
                want = exact.search(query, limit=10, filter=flt)
                got = auto.search(query, limit=10, filter=flt)
                assert len(got) == 10 and all(h.startswith(user) for h, _ in got)
                # the walk (ef 200 of 400 rows) finds what the exact scan finds
                assert [h for h, _ in got] == [h for h, _ in want]
    finally:
        auto.close()
        exact.close()


def test_a_bulk_load_builds_the_graph_once_and_searches_as_upserts_do(
    postgres_dsn, schema, tmp_path
):
    import psycopg

    rng = random.Random(3)
    dim = 8

    def record(i, user):
        return IndexRecord(f"v{i}", "", {"user_id": user}, [rng.gauss(0, 1) for _ in range(dim)])

    first = [record(i, f"u{i % 3}") for i in range(300)]
    options = PgVectorOptions(dsn=postgres_dsn, schema=schema, scoped_search="exact")
    bulk = build_pgvector(options, BackendContext(memory_dir=str(tmp_path)))
    other = build_pgvector(
        PgVectorOptions(dsn=postgres_dsn, schema=f"{schema}_b", scoped_search="exact"),
        BackendContext(memory_dir=str(tmp_path)),
    )
    try:
        bulk.open(model_name="m", dimension=dim)
        other.open(model_name="m", dimension=dim)
        assert bulk.bulk_upsert(iter([first[:100], first[100:]])) == 300
        other.upsert(first)
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            defined = conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname LIKE '%%hnsw'",
                (schema,),
            ).fetchall()
        assert len(defined) == 1 and "hnsw" in defined[0][0]
        query = [rng.gauss(0, 1) for _ in range(dim)]
        for user in ("u0", "u1", None):
            flt = SearchFilter(user_id=user) if user else None
            got = bulk.search(query, limit=7, filter=flt)
            want = other.search(query, limit=7, filter=flt)
            assert [h for h, _ in got] == [h for h, _ in want]
        # Into a table with rows: an upsert per chunk (a changed vector replaces the old one)
        moved = [IndexRecord("v0", "", {"user_id": "u9"}, query)]
        assert bulk.bulk_upsert(iter([moved])) == 1
        assert bulk.count() == 300
        assert bulk.search(query, limit=1, filter=SearchFilter(user_id="u9"))[0][0] == "v0"
    finally:
        bulk.close()
        other.close()
