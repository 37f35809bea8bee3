"""New entries' vectors are computed in batches (``vector_batch_texts``), never at a search's
expense of correctness: every committed entry is found by vector search, and a crash loses none."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from lightmem_core import LightMemory
from lightmem_core.store import SQLiteRecordStore
from lightmem_core.testing.reference import reference_config

TURNS = [
    {
        "role": "user",
        "content": f"turn {i}: the {animal} sleeps in the {place}",
        "time_stamp": f"2024-01-{i + 1:02d}T10:00:00",
    }
    for i, (animal, place) in enumerate(
        [("cat", "garden"), ("dog", "kitchen"), ("owl", "attic"), ("fox", "barn"), ("eel", "pond")]
    )
]


def vectors(mem: LightMemory) -> int:
    """Entries in the vector store, read from the backend (no flush)."""
    return mem.backends.vector_indexes()[0].count()


def unindexed(mem: LightMemory) -> list[str]:
    return [e.memory for e in mem.store.entries(status="active", unindexed_only=True)]


def test_vectors_wait_for_a_batch_and_a_search_sees_every_committed_entry(make_memory):
    mem = make_memory()
    mem.add(TURNS[0])
    mem.add(TURNS[1])
    # committed, lexically searchable, vectors queued
    assert sorted(e.memory for e in mem.get_all()) == sorted(t["content"] for t in TURNS[:2])
    assert vectors(mem) == 0
    assert unindexed(mem) == [TURNS[0]["content"], TURNS[1]["content"]]
    hits = mem.search("dog kitchen", limit=1, strategy="embedding")
    assert hits[0].entry.memory == TURNS[1]["content"]
    assert vectors(mem) == 2
    assert unindexed(mem) == []
    # the indexing embeddings stay booked under ingestion, the query under retrieval
    usage = mem.get_token_statistics()["by_operation"]
    assert usage["add_memory"]["embedded_texts"] == 2
    assert usage["add_memory"]["embedder_calls"] == 1
    assert usage["retrieve"]["embedded_texts"] == 1


def test_a_full_queue_is_embedded_in_one_call(make_memory):
    mem = make_memory(vector_batch_texts=3)
    embedder = mem.embedder.backend
    for turn in TURNS[:2]:
        mem.add(turn)
    assert vectors(mem) == 0
    calls = embedder.calls
    mem.add(TURNS[2])
    assert embedder.calls == calls + 1
    assert vectors(mem) == 3
    mem.add(TURNS[3])
    assert vectors(mem) == 3


def test_vector_batch_texts_1_embeds_every_batch_at_once(make_memory):
    mem = make_memory(vector_batch_texts=1)
    mem.add(TURNS[:2])
    assert vectors(mem) == 2
    assert unindexed(mem) == []


def test_a_queued_entry_changed_or_deleted_is_indexed_as_it_is_now(make_memory):
    mem = make_memory()
    mem.add(TURNS[:3])
    _, dog, owl = mem.get_all()
    mem.delete(dog.id)
    mem.update(owl.id, "the owl moved to the lighthouse")
    hits = mem.search("owl lighthouse", limit=5, strategy="embedding")
    assert hits[0].entry.id == owl.id
    assert dog.id not in [h.entry.id for h in hits]
    assert vectors(mem) == 2
    assert unindexed(mem) == []


def test_close_writes_the_queued_vectors(tmp_path, ref_host):
    cfg = reference_config(tmp_path / "m")
    with LightMemory(cfg, host=ref_host) as mem:
        mem.add(TURNS[:2])
        assert vectors(mem) == 0
    store = SQLiteRecordStore(tmp_path / "m" / "history.db")
    try:
        assert store.entries(status="active", unindexed_only=True) == []
        assert len(store.entries(status="active")) == 2
    finally:
        store.close()


def test_sigkill_with_queued_vectors_loses_none_of_them(tmp_path):
    cfg = reference_config(tmp_path / "m")
    code = f"""
    import os, signal
    from lightmem_core import LightMemory
    from lightmem_core.plugins import PluginHost
    from lightmem_core.testing.reference import ReferencePlugin
    import lightmem_core.builtin as b
    host = PluginHost(autoload=False)
    host.register(b, "builtin"); host.register(ReferencePlugin(), "reference")
    mem = LightMemory({cfg!r}, host=host)
    for turn in {TURNS!r}:
        mem.add(turn)
    assert mem.backends.vector_indexes()[0].count() == 0
    print("added", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.split() == ["added"]
    import lightmem_core.builtin as builtin
    from lightmem_core.testing import fresh_host
    from lightmem_core.testing.reference import ReferencePlugin

    with LightMemory(cfg, host=fresh_host(builtin, ReferencePlugin())) as mem:
        assert len(mem.get_all()) == len(TURNS)
        hits = mem.search("the sleeps in", limit=10, strategy="embedding")
        assert sorted(h.entry.memory for h in hits) == sorted(t["content"] for t in TURNS)
        assert vectors(mem) == len(TURNS)
        assert unindexed(mem) == []


def test_a_text_is_encoded_once_across_segmentation_indexing_and_search(make_memory):
    mem = make_memory(topic_segment=True)
    mem.add_memory(TURNS, force_segment=True, force_extract=True)
    mem.search(TURNS[0]["content"], limit=1, strategy="embedding")  # flushes: vectors written
    usage = mem.get_token_statistics()["by_operation"]
    # the segmenter encoded the five turns; indexing and the query (a turn's text) reuse them
    assert usage["add_memory"]["embedded_texts"] == len(TURNS)
    assert "retrieve" not in usage or usage["retrieve"]["embedded_texts"] == 0
    mem.search("where does the owl sleep", limit=1, strategy="embedding")
    mem.search("where does the owl sleep", limit=1, strategy="embedding")
    assert mem.get_token_statistics()["by_operation"]["retrieve"]["embedded_texts"] == 1


def test_the_embedders_memory_of_recent_vectors_is_bounded(make_memory, monkeypatch):
    import lightmem_core.backends as backends

    mem = make_memory()
    dimension = mem.embedder.dimension
    monkeypatch.setattr(backends, "RECENT_VECTOR_BYTES", 3 * dimension * 4)  # three vectors
    first = mem.embedder.embed(["a", "b", "c", "d"])
    assert list(mem.embedder._recent) == ["b", "c", "d"]
    calls = mem.embedder.backend.calls
    again = mem.embedder.embed(["d", "a"])  # "d" remembered, "a" encoded again
    assert mem.embedder.backend.calls == calls + 1
    assert list(mem.embedder._recent) == ["c", "d", "a"]
    assert (again[0] == first[3]).all() and (again[1] == first[0]).all()
