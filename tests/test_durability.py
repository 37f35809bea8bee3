"""Crash safety: nothing add_memory returned for is lost, nothing is stored twice."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from lightmem_core import LightMemory
from lightmem_core.store import SCHEMA_VERSION, SQLiteRecordStore
from lightmem_core.testing.reference import reference_config

TURNS = [
    {
        "role": "user",
        "content": f"fact number {i} about topic {i % 3}",
        "time_stamp": f"2024-01-{i + 1:02d}T10:00:00",
    }
    for i in range(12)
]


def test_sigkill_after_add_memory_returns_loses_nothing(tmp_path):
    cfg = reference_config(tmp_path / "m", sensory_buffer_tokens=40, short_term_buffer_tokens=40)
    code = f"""
    import json, os, signal, sys
    from lightmem_core import LightMemory
    from lightmem_core.plugins import PluginHost
    from lightmem_core.testing.reference import ReferencePlugin
    host = PluginHost(autoload=False)
    import lightmem_core.builtin as b
    host.register(b, "builtin"); host.register(ReferencePlugin(), "reference")
    mem = LightMemory({cfg!r}, host=host)
    turns = {TURNS!r}
    for i, t in enumerate(turns):
        mem.add_memory([t])
        print(i, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout.split()[-1] == str(len(TURNS) - 1)
    import lightmem_core.builtin as builtin
    from lightmem_core.testing import fresh_host
    from lightmem_core.testing.reference import ReferencePlugin

    with LightMemory(cfg, host=fresh_host(builtin, ReferencePlugin())) as mem:
        journal = mem.store.journal()
        assert [r.message.content for r in journal] == [t["content"] for t in TURNS]
        mem.add_memory([], force_segment=True, force_extract=True)
        memories = sorted(e.memory for e in mem.get_all())
        assert memories == sorted(t["content"] for t in TURNS)
        hits = mem.search("fact number 7 about topic 1", limit=1)
        assert hits[0].entry.memory == "fact number 7 about topic 1"


def test_crash_between_extraction_and_commit_neither_loses_nor_duplicates(
    tmp_path, ref_host, monkeypatch
):
    cfg = reference_config(tmp_path / "m")
    mem = LightMemory(cfg, host=ref_host)
    original = mem.store.complete_batch

    def crash(batch_id, entries, **kwargs):
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(mem.store, "complete_batch", crash)
    with pytest.raises(KeyboardInterrupt):
        mem.add_memory(TURNS[:4], force_segment=True, force_extract=True)
    assert mem.get_all() == []
    assert mem.store.stats()["batches"] == {"pending": 1}
    mem.close()
    monkeypatch.setattr(mem.store, "complete_batch", original)
    with LightMemory(cfg, host=ref_host) as reopened:
        reopened.retry()
        assert len(reopened.get_all()) == 4
        reopened.retry()
        reopened.add_memory(TURNS[:4], force_segment=True, force_extract=True)
        assert len(reopened.get_all()) == 4
        assert reopened.store.stats()["batches"] == {"done": 1}


def test_crash_before_indexing_is_repaired_on_open(tmp_path, ref_host, monkeypatch):
    cfg = reference_config(tmp_path / "m")
    mem = LightMemory(cfg, host=ref_host)
    mem.add_memory(TURNS[:1], force_segment=True, force_extract=True)

    def crash(entries, *, text_too=True, defer=False):
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(mem._rt.indexer, "index", crash)  # the index stage dies
    with pytest.raises(KeyboardInterrupt):
        mem.add_memory(TURNS[1:2], force_segment=True, force_extract=True)
    mem.backends.close()
    mem.store.close()
    mem._owner.release()  # the process died: the OS drops its lock on the memory dir
    with LightMemory(cfg, host=ref_host) as reopened:
        hits = reopened.search("fact number 1 about topic 1", limit=1, strategy="embedding")
        assert hits[0].entry.memory == TURNS[1]["content"]


def test_store_is_wal_and_versioned(tmp_path):
    store = SQLiteRecordStore(tmp_path / "h.db")
    assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
    mode = sqlite3.connect(tmp_path / "h.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    store.set_meta("schema_version", str(SCHEMA_VERSION + 1))
    store.close()
    from lightmem_core import StoreError

    with pytest.raises(StoreError, match="newer than this"):
        SQLiteRecordStore(tmp_path / "h.db")


def test_history_keeps_every_change(make_memory):
    mem = make_memory()
    mem.add_memory(TURNS[:1], force_segment=True, force_extract=True)
    entry = mem.get_all()[0]
    mem.update(entry.id, "fact number 0, corrected")
    mem.delete(entry.id, reason="no longer true")
    actions = [(h["action"], h["old_memory"], h["new_memory"]) for h in mem.history(entry.id)]
    assert actions == [
        ("add", None, TURNS[0]["content"]),
        ("update", TURNS[0]["content"], "fact number 0, corrected"),
        ("delete", "fact number 0, corrected", None),
    ]
    assert mem.get_all() == []
    assert mem.get(entry.id).status == "deleted"
    assert mem.search("fact number 0", limit=5) == []


def test_reindex_moves_a_store_to_another_embedding_model(tmp_path, ref_host):
    cfg = reference_config(tmp_path / "m")
    with LightMemory(cfg, host=ref_host) as mem:
        mem.add_memory(TURNS[:3], force_segment=True, force_extract=True)
    other = {**cfg, "text_embedder": {"model_name": "hash", "configs": {"dims": 32}}}
    with (
        LightMemory(other, host=ref_host) as mem,
        pytest.raises(Exception, match="reference-hash-64"),
    ):
        mem.search("fact number 1", limit=1)
    with LightMemory(other, host=ref_host) as mem:
        assert mem.reindex() == 3
        hits = mem.search("fact number 1 about topic 1", limit=1, strategy="embedding")
        assert hits[0].entry.memory == TURNS[1]["content"]


def test_reindex_with_qdrant_after_an_embedder_change(tmp_path):
    pytest.importorskip("lightmem_qdrant")
    from lightmem_core.plugins import PluginHost
    from lightmem_core.testing.reference import ReferencePlugin

    host = PluginHost()
    host.register(ReferencePlugin(), "reference")
    cfg = reference_config(tmp_path / "m", embedding_retriever={"model_name": "qdrant"})
    with LightMemory(cfg, host=host) as mem:
        mem.add_memory(TURNS[:3], force_segment=True, force_extract=True)
    other = {**cfg, "text_embedder": {"model_name": "hash", "configs": {"dims": 32}}}
    with LightMemory(other, host=host) as mem, pytest.raises(Exception, match="reindex"):
        mem.search("fact", limit=1)
    with LightMemory(other, host=host) as mem:
        assert mem.reindex() == 3
        hits = mem.search("fact number 2 about topic 2", limit=1, strategy="embedding")
        assert hits[0].entry.memory == TURNS[2]["content"]
