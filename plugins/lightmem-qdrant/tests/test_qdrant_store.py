"""Behaviour of the ``qdrant`` retriever beyond the conformance suite: locks, batches, the
optimized (quantized) engine path, server options without a server, stores it did not create."""

from __future__ import annotations

import json
import math
import random
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from lightmem_hookspecs import IndexRecord, SearchFilter
from lightmem_qdrant.plugin import QdrantOptions
from lightmem_qdrant.store import QdrantRetriever

MODEL = "test-model"


def vec(*values: float, dim: int = 4) -> tuple[float, ...]:
    return tuple(values) + (0.0,) * (dim - len(values))


def opened(options: QdrantOptions, store_dir: Path, *, model=MODEL, dim=4) -> QdrantRetriever:
    retriever = QdrantRetriever(options, memory_dir=str(store_dir))
    retriever.open(model_name=model, dimension=dim)
    return retriever


def random_records(n: int, dim: int, seed: int = 0, prefix: str = "e") -> list[IndexRecord]:
    rng = random.Random(seed)
    return [
        IndexRecord(
            f"{prefix}{i}",
            f"text {i}",
            {
                "user_id": f"u{i % 3}",
                "speaker": ("alice", "bob")[i % 2],
                "topic_id": i % 7,
                "time_stamp": 1_700_000_000.0 + i,
            },
            tuple(rng.gauss(0.0, 1.0) for _ in range(dim)),
        )
        for i in range(n)
    ]


def exact_search(records, query, limit, search_filter=None) -> list[tuple[str, float]]:
    def cos(a, b):
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / (math.hypot(*a) * math.hypot(*b))

    scored = [
        (r.id, cos(r.vector, query))
        for r in records
        if search_filter is None or search_filter.matches(r.id, r.payload)
    ]
    return sorted(scored, key=lambda p: -p[1])[:limit]


# -- where data goes ---------------------------------------------------------------------------


def test_default_store_lives_under_the_memory_dir_with_its_model(store_dir):
    retriever = opened(QdrantOptions(), store_dir, dim=4)
    retriever.upsert([IndexRecord("a", "x", {}, vec(1.0))])
    indexed = set(retriever._engine.shard.info().payload_schema)  # filters never scan payloads
    assert indexed == {"user_id", "agent_id", "run_id", "speaker", "topic_id", "time_stamp"}
    retriever.close()
    shard = store_dir / "qdrant" / "edge" / "lightmem"
    assert (shard / "edge_config.json").exists()
    meta = json.loads((store_dir / "qdrant" / "edge" / "lightmem.lightmem.json").read_text())
    assert meta["lightmem_model_name"] == MODEL and meta["lightmem_dimension"] == 4


def test_in_memory_modes_write_nothing(store_dir):
    for configs in ({"path": ":memory:"}, {"on_disk": False}, {"on_disk": False, "engine": "edge"}):
        retriever = opened(QdrantOptions(**configs), store_dir)
        retriever.upsert([IndexRecord("a", "x", {}, vec(1.0))])
        assert retriever.count() == 1
        scratch = getattr(retriever._engine, "root", None)  # edge: its temporary directory
        retriever.close()
        assert scratch is None or not Path(scratch).exists()
    assert list(store_dir.iterdir()) == []


def test_the_original_id_and_text_are_kept_in_the_payload(store_dir):
    from qdrant_client import QdrantClient

    path = store_dir / "q"
    retriever = opened(QdrantOptions(path=str(path), engine="client"), store_dir)
    retriever.upsert([IndexRecord("entry/42", "the text", {"user_id": "u1"}, vec(1.0))])
    retriever.close()
    client = QdrantClient(path=str(path))
    try:
        (point,), _ = client.scroll("lightmem", with_payload=True)
        assert point.payload == {"lightmem_id": "entry/42", "text": "the text", "user_id": "u1"}
        info = client.get_collection("lightmem")
        assert info.config.metadata["lightmem_model_name"] == MODEL
    finally:
        client.close()


def test_store_text_false_leaves_the_text_out(store_dir):
    retriever = opened(QdrantOptions(path=":memory:", store_text=False), store_dir)
    retriever.upsert([IndexRecord("a", "secret text", {}, vec(1.0))])
    (record,) = retriever._engine.client.retrieve("lightmem", ids=[str(_pid("a"))])
    assert record.payload == {"lightmem_id": "a"}
    retriever.close()


def _pid(entry_id: str):
    from lightmem_qdrant.common import point_id

    return point_id(entry_id)


def test_point_ids_are_deterministic_uuids():
    assert _pid("abc") == _pid("abc")
    assert _pid("abc") != _pid("abd")
    assert _pid("4f9c2d3e8a7b4c1d9e0f1a2b3c4d5e6f").version == 5


# -- one process per path ----------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys
    from lightmem_qdrant.plugin import QdrantOptions
    from lightmem_qdrant.store import QdrantRetriever
    r = QdrantRetriever(QdrantOptions(path=sys.argv[1], engine=sys.argv[2]), memory_dir=".")
    r.open(model_name="test-model", dimension=4)
    print("ready", flush=True)
    sys.stdin.readline()
    r.close()
    """
)


@pytest.mark.parametrize("engine", ["edge", "client"])
def test_a_path_held_by_another_process_gives_a_clear_error(store_dir, engine):
    path = str(store_dir / "q")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, path, engine],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        retriever = QdrantRetriever(QdrantOptions(path=path, engine=engine))
        with pytest.raises(RuntimeError) as info:
            retriever.open(model_name=MODEL, dimension=4)
        message = str(info.value)
        assert "locked by another process" in message and path in message
        assert "url/host" in message
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=60)
    retriever = opened(QdrantOptions(path=path, engine=engine), store_dir)  # free again
    retriever.close()


@pytest.mark.parametrize("engine", ["edge", "client"])
def test_a_second_open_in_the_same_process_is_refused(store_dir, engine):
    first = opened(QdrantOptions(path=str(store_dir / "q"), engine=engine), store_dir)
    second = QdrantRetriever(QdrantOptions(path=str(store_dir / "q"), engine=engine))
    with pytest.raises(RuntimeError, match="already open in this process"):
        second.open(model_name=MODEL, dimension=4)
    first.close()
    second.open(model_name=MODEL, dimension=4)
    second.close()


def test_two_collections_in_one_path_are_independent(store_dir):
    a = opened(QdrantOptions(collection_name="a"), store_dir)
    b = opened(QdrantOptions(collection_name="b"), store_dir, model="other-model", dim=3)
    a.upsert([IndexRecord("x", "x", {}, vec(1.0))])
    assert (a.count(), b.count()) == (1, 0)
    a.close()
    b.close()


# -- batches, optimization, recall -------------------------------------------------------------


def test_five_thousand_records_go_in_configured_batches(store_dir):
    retriever = opened(QdrantOptions(batch_size=1000), store_dir, dim=16)
    calls = []
    engine_upsert = retriever._engine.upsert

    def counting_upsert(points):
        calls.append(len(points))
        engine_upsert(points)

    retriever._engine.upsert = counting_upsert
    records = random_records(5000, 16)
    retriever.upsert(records)
    assert calls == [1000] * 5
    assert retriever.count() == 5000
    for i in (0, 2500, 4999):
        assert retriever.search(list(records[i].vector), limit=1)[0][0] == f"e{i}"
    retriever.close()


def test_optimized_quantized_segments_keep_recall_scores_and_filters_exact(store_dir):
    dim = 48
    records = random_records(3000, dim, seed=5)
    retriever = opened(QdrantOptions(optimize_threshold=500), store_dir, dim=dim)
    retriever.upsert(records)
    assert retriever.info["optimized_points"] >= 2500  # the optimizer ran
    rng = random.Random(9)
    queries = [tuple(rng.gauss(0.0, 1.0) for _ in range(dim)) for _ in range(15)]
    filters = [
        None,
        SearchFilter(user_id="u1"),
        SearchFilter(speaker="bob", topic_id=3),
        SearchFilter(time_gte=1_700_000_000.0 + 1000, time_lt=1_700_000_000.0 + 1400),
        SearchFilter(user_id="u2", exclude_ids=frozenset({f"e{i}" for i in range(0, 3000, 2)})),
    ]
    by_id = {r.id: r for r in records}
    overlap, total = 0, 0
    for search_filter in filters:
        for q in queries:
            got = retriever.search(list(q), limit=10, filter=search_filter)
            want = exact_search(records, q, 10, search_filter)
            overlap += len({i for i, _ in got} & {i for i, _ in want})
            total += len(want)
            for entry_id, score in got:  # scores are exact cosines (rescored), filters exact
                record = by_id[entry_id]
                assert search_filter is None or search_filter.matches(entry_id, record.payload)
                assert score == pytest.approx(exact_search([record], q, 1)[0][1], abs=2e-3)
    assert overlap / total >= 0.95
    retriever.close()


def test_a_reopened_store_maps_point_ids_back_to_entry_ids(store_dir):
    records = random_records(300, 8)
    retriever = opened(QdrantOptions(), store_dir, dim=8)
    retriever.upsert(records)
    retriever.close()
    again = opened(QdrantOptions(), store_dir, dim=8)
    assert again.search(list(records[123].vector), limit=1)[0][0] == "e123"
    again.close()


def test_duplicate_ids_in_one_upsert_keep_the_last(store_dir):
    retriever = opened(QdrantOptions(batch_size=2), store_dir)
    retriever.upsert(
        [
            IndexRecord("a", "first", {"user_id": "old"}, vec(1.0)),
            IndexRecord("b", "b", {}, vec(0.0, 1.0)),
            IndexRecord("a", "last", {"user_id": "new"}, vec(0.0, 0.0, 1.0)),
        ]
    )
    assert retriever.count() == 2
    assert retriever.search(list(vec(0.0, 0.0, 1.0)), limit=1) == [("a", pytest.approx(1.0))]
    assert retriever.search(list(vec(1.0)), limit=5, filter=SearchFilter(user_id="old")) == []
    retriever.close()


# -- refusals ----------------------------------------------------------------------------------


def test_embedding_model_dims_must_match_the_embedder(store_dir):
    retriever = QdrantRetriever(QdrantOptions(embedding_model_dims=1024), memory_dir=str(store_dir))
    with pytest.raises(ValueError, match="embedding_model_dims is 1024") as info:
        retriever.open(model_name="all-MiniLM-L6-v2", dimension=384)
    assert "384" in str(info.value)
    retriever.close()
    assert not (store_dir / "qdrant").exists()


def test_mismatch_message_names_collection_models_and_the_way_out(store_dir):
    opened(QdrantOptions(), store_dir, model="all-MiniLM-L6-v2", dim=384).close()
    retriever = QdrantRetriever(QdrantOptions(), memory_dir=str(store_dir))
    with pytest.raises(ValueError) as info:
        retriever.open(model_name="bge-base-en", dimension=768)
    message = str(info.value)
    assert "collection 'lightmem'" in message
    assert "'all-MiniLM-L6-v2' (384 dims)" in message and "'bge-base-en' (768 dims)" in message
    assert "collection_name/path" in message and "lightmem reindex" in message


def test_use_before_open_is_refused():
    retriever = QdrantRetriever(QdrantOptions(path=":memory:"))
    for call in (
        lambda: retriever.upsert([]),
        lambda: retriever.search([1.0], limit=1),
        lambda: retriever.delete(["a"]),
        retriever.count,
    ):
        with pytest.raises(RuntimeError, match="call open"):
            call()


def test_bad_vectors_and_time_stamps_are_refused(store_dir):
    retriever = opened(QdrantOptions(path=":memory:"), store_dir)
    with pytest.raises(ValueError, match="NaN"):
        retriever.upsert([IndexRecord("a", "x", {}, vec(float("nan")))])
    with pytest.raises(ValueError, match="no vector"):
        retriever.upsert([IndexRecord("a", "x", {}, None)])
    with pytest.raises(ValueError, match="time_stamp"):
        retriever.upsert([IndexRecord("a", "x", {"time_stamp": "yesterday"}, vec(1.0))])
    retriever.upsert([IndexRecord("zero", "!!!", {}, vec(0.0))])  # a word-less text's embedding
    assert retriever.count() == 1
    retriever.close()


def test_opening_twice_with_another_model_is_refused(store_dir):
    retriever = opened(QdrantOptions(path=":memory:"), store_dir)
    retriever.open(model_name=MODEL, dimension=4)  # same: fine
    with pytest.raises(ValueError, match="other-model"):
        retriever.open(model_name="other-model", dimension=4)
    retriever.close()


# -- stores this plugin did not create ---------------------------------------------------------


def test_a_qdrant_client_store_without_metadata_is_adopted_not_wiped(store_dir):
    from qdrant_client import QdrantClient, models

    path = store_dir / "original"
    client = QdrantClient(path=str(path))
    client.create_collection(
        "lightmem", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    client.upsert("lightmem", points=[models.PointStruct(id=7, vector=[1.0, 0, 0, 0])])
    client.close()
    options = QdrantOptions(path=str(path), engine="client")
    with pytest.raises(ValueError, match="unrecorded model"):
        opened(options, store_dir, dim=8)
    retriever = opened(options, store_dir, dim=4)
    assert retriever.count() == 1
    retriever.close()
    with pytest.raises(ValueError, match=f"'{MODEL}' \\(4 dims\\)"):
        opened(options, store_dir, model="another", dim=4)  # the model is now recorded


def test_an_edge_shard_without_its_description_is_still_checked(store_dir):
    opened(QdrantOptions(), store_dir, dim=4).close()
    (store_dir / "qdrant" / "edge" / "lightmem.lightmem.json").unlink()
    with pytest.raises(ValueError, match=r"unrecorded model \(4 dims\)"):
        opened(QdrantOptions(), store_dir, dim=6)
    opened(QdrantOptions(), store_dir, dim=4).close()  # same size: adopted


def test_recreate_drops_only_this_collection(store_dir):
    keep = opened(QdrantOptions(collection_name="keep"), store_dir)
    keep.upsert([IndexRecord("k", "k", {}, vec(1.0))])
    keep.close()
    old = opened(QdrantOptions(), store_dir)
    old.upsert([IndexRecord("a", "a", {}, vec(1.0))])
    old.close()
    retriever = QdrantRetriever(QdrantOptions(), memory_dir=str(store_dir))
    with pytest.raises(ValueError):
        retriever.open(model_name="new-model", dimension=3)
    retriever.recreate(model_name="new-model", dimension=3)
    assert retriever.count() == 0 and retriever.model_name == "new-model"
    retriever.close()
    keep = opened(QdrantOptions(collection_name="keep"), store_dir)
    assert keep.count() == 1
    keep.close()


# -- server mode, without a server -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("style", ["url", "host"])
def test_an_unreachable_server_gives_a_clear_error(style):
    port = _free_port()
    configs = (
        {"url": f"http://127.0.0.1:{port}"}
        if style == "url"
        else {"host": "127.0.0.1", "port": port}
    )
    retriever = QdrantRetriever(QdrantOptions(timeout=2, **configs))
    assert retriever.engine_name == "client" and retriever.path is None
    with pytest.raises(RuntimeError) as info:
        retriever.open(model_name=MODEL, dimension=4)
    message = str(info.value)
    assert "cannot reach the Qdrant server" in message and str(port) in message
    assert "url/host/port" in message
    retriever.close()


def test_server_client_arguments_follow_the_options():
    from lightmem_qdrant.client import ClientEngine

    o = QdrantOptions(url="https://x.cloud.qdrant.io", api_key="k", prefer_grpc=True, timeout=5)
    args = ClientEngine(o, "server", None)._client_arguments()
    assert args["url"] == "https://x.cloud.qdrant.io" and args["api_key"] == "k"
    assert args["prefer_grpc"] is True and args["timeout"] == 5 and "host" not in args
    o = QdrantOptions(host="qdrant.internal")
    args = ClientEngine(o, "server", None)._client_arguments()
    assert (args["host"], args["port"]) == ("qdrant.internal", 6333)


def test_segments_an_optimization_replaced_are_dropped(store_dir):
    """Each optimization folds the new points into a new segment; the ones it replaced must
    leave the disk (and the process's memory maps) at once, not when the store closes."""
    dim = 32
    retriever = opened(QdrantOptions(optimize_threshold=200), store_dir, dim=dim)
    records = random_records(1000, dim, seed=11)
    for start in range(0, 1000, 100):
        retriever.upsert(records[start : start + 100])
    assert retriever.info["optimized_points"] >= 800  # the optimizer ran several times
    matrices = list((store_dir / "qdrant").rglob("matrix.dat"))
    live = 1000 * dim * 4
    assert sum(m.stat().st_size for m in matrices) < 1.5 * live, matrices
    maps = Path("/proc/self/maps")
    if maps.exists():
        lines = maps.read_text().splitlines()
        mapped = {line.split()[-1] for line in lines if "matrix.dat" in line}
        assert mapped <= {str(m) for m in matrices}
    assert retriever.count() == 1000
    retriever.close()


@pytest.mark.parametrize("optimize_threshold", [100_000, 300])
def test_filters_most_points_pass_give_the_exact_filtered_top_k(store_dir, optimize_threshold):
    """A filter nearly every point passes (one user's store) takes Edge's short-list path, and
    one that only some pass takes the native path; both must equal exact filtered search."""
    dim = 24
    records = random_records(1200, dim, seed=3)
    for i, r in enumerate(records):
        r.payload["user_id"] = "solo" if i % 40 else "rare"  # 97.5% "solo"
    options = QdrantOptions(path=str(store_dir / "q"), optimize_threshold=optimize_threshold)
    retriever = opened(options, store_dir, dim=dim)
    retriever.upsert(records)
    rng = random.Random(4)
    filters = [
        SearchFilter(user_id="solo"),
        SearchFilter(user_id="rare"),
        SearchFilter(user_id="solo", time_gte=1_700_000_000.0 + 100),
        SearchFilter(user_id="solo", exclude_ids=frozenset({"e1", "e2", "e3"})),
        SearchFilter(time_lt=1_700_000_000.0 + 1150, exclude_ids=frozenset({"e7"})),
    ]
    for search_filter in filters:
        for _ in range(8):
            q = tuple(rng.gauss(0.0, 1.0) for _ in range(dim))
            got = [i for i, _ in retriever.search(list(q), limit=7, filter=search_filter)]
            want = [i for i, _ in exact_search(records, q, 7, search_filter)]
            assert got == want, search_filter
    retriever.close()


def test_edge_tuning_options_can_change_on_an_existing_store(store_dir):
    records = random_records(400, 16, seed=8)
    retriever = opened(QdrantOptions(optimize_threshold=100), store_dir, dim=16)
    retriever.upsert(records)
    retriever.close()
    expected = 400
    for step, tuning in enumerate(({"quantization": "none"}, {"hnsw_m": 8, "hnsw_ef": 64}, {})):
        retriever = opened(QdrantOptions(optimize_threshold=100, **tuning), store_dir, dim=16)
        assert retriever.count() == expected
        assert retriever.search(list(records[42].vector), limit=1)[0][0] == "e42"
        retriever.upsert(random_records(150, 16, seed=9 + step, prefix=f"more{step}-"))
        expected += 150
        retriever.close()


def test_the_optimizer_never_builds_a_segment_over_max_segment_points(store_dir):
    """A fill makes several capped segments instead of rewriting one that holds everything at
    each optimization; searches still see every point."""
    dim = 256
    options = QdrantOptions(optimize_threshold=100, max_segment_points=400)
    retriever = opened(options, store_dir, dim=dim)
    records = random_records(2400, dim, seed=13)
    for start in range(0, 2400, 100):
        retriever.upsert(records[start : start + 100])
    info = retriever.info
    assert info["optimized_points"] >= 2000 and info["segments"] >= 4
    for matrix in (store_dir / "qdrant").rglob("matrix.dat"):  # float32 vectors per segment
        assert matrix.stat().st_size <= 2 * 400 * dim * 4, matrix
    assert retriever.count() == 2400
    for i in (0, 1234, 2399):
        assert retriever.search(list(records[i].vector), limit=1)[0][0] == f"e{i}"
    retriever.close()
