"""Two instances of one backend kind keep separate storage: the one rule
(``BackendContext.storage_name``) and the shipped plugins that keep files following it."""

from __future__ import annotations

import pytest
from lightmem_hookspecs import BackendContext

from lightmem_core import LightMemory


@pytest.mark.parametrize(
    ("instance", "name"),
    [
        ("", "lexical_bm25.sqlite3"),
        ("embedding", "lexical_bm25.sqlite3"),
        ("context", "lexical_bm25.sqlite3"),
        ("graph", "lexical_bm25.sqlite3"),
        ("context_retriever", "lexical_bm25.sqlite3"),
        ("reranker[0]", "lexical_bm25.sqlite3"),
        ("keywords", "lexical_bm25-keywords.sqlite3"),
        ("reranker[1]", "lexical_bm25-reranker_1.sqlite3"),
        ("my label/../x", "lexical_bm25-my_label_x.sqlite3"),
    ],
)
def test_storage_name(instance, name):
    assert (
        BackendContext(memory_dir="m", instance=instance).storage_name("lexical_bm25.sqlite3")
        == name
    )


def test_storage_name_without_an_extension():
    assert BackendContext(memory_dir="m", instance="dense").storage_name("lightmem") == (
        "lightmem-dense"
    )


def _chain(tmp_path, *retrievers, **overrides):
    return {
        "memory_dir": str(tmp_path / "mem"),
        "text_embedder": {"model_name": "hash"},
        "embedding_retriever": None,
        "context_retriever": None,
        "retrieve_strategy": "hybrid",
        "retrieval": {"retrievers": list(retrievers)},
        **overrides,
    }


def _use(config, host):
    with LightMemory(config, host=host) as mem:
        mem.add_memory(
            [{"role": "user", "content": "My dog Rex swims in the lake."}],
            force_segment=True,
            force_extract=True,
        )
        return {h.id for h in mem.search("dog", limit=3)}


@pytest.fixture
def host():
    from lightmem_core.plugins import PluginHost
    from lightmem_core.testing.reference import ReferencePlugin

    host = PluginHost(only=["lightmem-core", "sqlite_fts", "qdrant", "networkx", "bm25"])
    host.register(ReferencePlugin(), "reference")
    return host


def test_two_sqlite_indexes_in_one_chain_keep_two_files(tmp_path, host):
    pytest.importorskip("lightmem_sqlite_index")
    config = _chain(
        tmp_path,
        {"kind": "context_retriever", "model_name": "sqlite-bm25"},
        {"kind": "context_retriever", "model_name": "sqlite-bm25", "name": "keywords"},
        {
            "kind": "context_retriever",
            "model_name": "BM25",
            "name": "memo",
            "configs": {"on_disk": True},
        },
        {
            "kind": "context_retriever",
            "model_name": "BM25",
            "name": "memo2",
            "configs": {"on_disk": True},
        },
    )
    assert _use(config, host)
    files = {p.name for p in (tmp_path / "mem").iterdir()}
    assert {"lexical_bm25.sqlite3", "lexical_bm25-keywords.sqlite3"} <= files
    assert {"bm25_index-memo.json", "bm25_index-memo2.json"} <= files
    assert _use(config, host), "both reopen"


def test_two_qdrant_stores_and_two_graphs_keep_separate_storage(tmp_path, host):
    pytest.importorskip("lightmem_qdrant")
    pytest.importorskip("lightmem_networkx")
    config = _chain(
        tmp_path,
        {"kind": "embedding_retriever", "model_name": "qdrant"},
        {"kind": "embedding_retriever", "model_name": "qdrant", "name": "dense"},
        {"kind": "graph_memory", "model_name": "networkx"},
        {"kind": "graph_memory", "model_name": "networkx", "name": "people"},
        graph_mem=True,
        graph_memory={"model_name": "networkx"},
    )
    assert _use(config, host)
    mem_dir = tmp_path / "mem"
    files = {p.name for p in mem_dir.iterdir()}
    assert {"graph.sqlite", "graph-people.sqlite"} <= files
    stored = {p.name for p in mem_dir.rglob("*") if p.is_dir()}
    assert {"lightmem", "lightmem-dense"} <= stored, sorted(stored)
    assert _use(config, host), "both reopen"


def test_every_kinds_own_key_keeps_the_default_name():
    from lightmem_hookspecs import BACKEND_KINDS

    for kind in BACKEND_KINDS:
        context = BackendContext(memory_dir="m", instance=kind)
        assert context.storage_name("store.db") == "store.db", kind


def test_the_reference_backends_follow_the_rule(tmp_path, host):
    config = _chain(
        tmp_path,
        {"kind": "embedding_retriever", "model_name": "exact"},
        {"kind": "embedding_retriever", "model_name": "exact", "name": "dense"},
        {"kind": "graph_memory", "model_name": "memory"},
        {"kind": "graph_memory", "model_name": "memory", "name": "people"},
        graph_mem=True,
        graph_memory={"model_name": "memory"},
    )
    assert _use(config, host)
    files = {p.name for p in (tmp_path / "mem").iterdir()}
    assert {"exact-index.json", "exact-index-dense.json"} <= files, sorted(files)
    assert {"reference-graph.json", "reference-graph-people.json"} <= files, sorted(files)
    assert _use(config, host), "both reopen"
