"""Erasing a tenant: found nowhere afterwards, not by the API and not in any file's bytes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lightmem_hookspecs import IndexCompaction, ScopeErase, hookimpl

from lightmem_core import AsyncLightMemory, LightMemory
from lightmem_core.errors import EmptyScopeError, InputError, StoreError
from lightmem_core.plugins import PluginHost
from lightmem_core.store import SQLiteRecordStore
from lightmem_core.testing.reference import ReferencePlugin, reference_config

pytest.importorskip("lightmem_qdrant", reason="the qdrant plugin is not installed")
pytest.importorskip("lightmem_sqlite_index", reason="the sqlite-index plugin is not installed")

MARKER = "ZQXMARKERZQX"
TENANT = "tenant-alice-7f3"


def _config(memory_dir: Path, lexical: str) -> dict:
    return {
        "memory_dir": str(memory_dir),
        "text_embedder": {"model_name": "hash"},
        "embedding_retriever": {"model_name": "qdrant"},
        "context_retriever": {"model_name": lexical},
        "retrieve_strategy": "hybrid",
    }


def _host() -> PluginHost:
    host = PluginHost()
    host.register(ReferencePlugin())
    return host


def _traces(root: Path) -> list[tuple[str, bytes]]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()  # the lexical indexes keep lower-cased terms
            for needle in (MARKER.lower().encode(), TENANT.lower().encode()):
                if needle in data:
                    found.append((str(path.relative_to(root)), needle))
    return found


def _msg(text: str, **extra):
    return {"role": "user", "content": text, **extra}


@pytest.mark.parametrize("lexical", ["sqlite-bm25", "sqlite-fts"])
def test_an_erased_tenant_is_found_nowhere(tmp_path, lexical):
    root = tmp_path / "mem"
    with LightMemory(_config(root, lexical), host=_host()) as mem:
        for i in range(40):
            mem.add([_msg(f"bob note {i} about his cat Whiskers")], user_id="bob")
        mem.add([_msg(f"my locker code word is {MARKER}", id="a1")], user_id=TENANT)
        mem.add([_msg(f"I told the doctor {MARKER} too")], user_id=TENANT, run_id="visit-2")
        mem.add([_msg("a plain fact of alice")], user_id=TENANT, agent_id="helper")
        first = mem.get_all(user_id=TENANT)[0]
        mem.update(first.id, f"the locker word is {MARKER} (updated)")
        mem.add([_msg(f"held in the buffer {MARKER}")], user_id=TENANT)  # buffered, unextracted
        mem.add_memory([_msg(f"still in the sensory buffer {MARKER}")], user_id=TENANT)
        assert mem.search(MARKER.lower(), user_id=TENANT)
        bob_before = mem.get_all(user_id="bob")

        receipt = mem.erase(user_id=TENANT)

        assert receipt.entries == 4  # every scope of the user: plain, run and agent ones
        assert receipt.messages == 5
        assert receipt.history == 5  # four adds and one update
        assert receipt.index_records["embedding_retriever:qdrant"] == 4
        assert receipt.index_records[f"context_retriever:{lexical}"] == 4
        assert set(receipt.compacted) == {
            "embedding_retriever:qdrant",
            f"context_retriever:{lexical}",
        }
        for kwargs in ({"user_id": TENANT}, {"user_id": TENANT, "run_id": "visit-2"}, {}):
            hits = mem.search(MARKER.lower(), **kwargs)
            assert all(MARKER not in h.entry.memory for h in hits)
            assert all(e.scope.user_id != TENANT for e in mem.get_all(**kwargs))
        assert mem.get(first.id) is None
        assert mem.history(first.id) == []
        assert all(MARKER not in str(row) for row in mem.history())
        assert mem.store.journal(None) == mem.store.journal(None)  # still readable
        assert all(r.message.scope.user_id == "bob" for r in mem.store.journal(None))
        # Nothing of anyone else went.
        assert mem.get_all(user_id="bob") == bob_before
        assert mem.search("Whiskers", user_id="bob", limit=3)
        # A second erase finds nothing.
        again = mem.erase(user_id=TENANT)
        assert (again.entries, again.messages, again.history) == (0, 0, 0)
    assert _traces(root) == []
    # The rebuilt files open and answer.
    with LightMemory(_config(root, lexical), host=_host()) as mem:
        assert len(mem.search("Whiskers cat", user_id="bob", limit=50)) == 40
        mem.add([_msg("a new note of bob")], user_id="bob")
        assert mem.search("new note", user_id="bob", limit=1)[0].entry.memory == "a new note of bob"


def test_erase_needs_a_scope_and_refuses_empty_ids(make_memory):
    mem = make_memory()
    with pytest.raises(InputError, match="name a user_id"):
        mem.erase()
    with pytest.raises(EmptyScopeError):
        mem.erase(user_id="")


def test_the_async_erase_waits_for_adds_in_flight(tmp_path, ref_host):
    from lightmem_core.testing.reference import reference_config

    async def main():
        async with AsyncLightMemory(reference_config(tmp_path / "m"), host=ref_host) as mem:
            adds = [mem.add([_msg(f"fact {i} {MARKER}")], user_id="alice") for i in range(10)]
            await asyncio.gather(*adds)
            receipt = await mem.erase(user_id="alice")
            return receipt, await mem.get_all(user_id="alice")

    receipt, left = asyncio.run(main())
    assert receipt.entries == 10 and left == []


def test_erase_removes_the_tenants_graph_relations_and_entities(tmp_path):
    pytest.importorskip("lightmem_networkx", reason="the networkx plugin is not installed")
    root = tmp_path / "mem"
    config = {
        "memory_dir": str(root),
        "text_embedder": {"model_name": "hash"},
        "embedding_retriever": {"model_name": "exact"},
        "context_retriever": {"model_name": "keyword"},
        "graph_mem": True,
        "graph_memory": {"model_name": "networkx"},
    }
    who = "Zqxmarkerzqx"
    with LightMemory(config, host=_host()) as mem:
        mem.add([_msg(f"{who} adopted a dog named Biscuit", speaker_name=who)], user_id=TENANT)
        mem.add([_msg("Bob adopted a cat named Tom", speaker_name="Bob")], user_id="bob")
        graph = mem.backends.graphs()[0]
        assert who in [e.name for e in graph.entities()]
        bob_relations = len([r for r in graph.relations() if r.scope.user_id == "bob"])
        receipt = mem.erase(user_id=TENANT)
        assert receipt.index_records["graph_memory:networkx"] > 0
        assert who not in [e.name for e in graph.entities()]
        assert all(r.scope.user_id != TENANT for r in graph.relations())
        assert len(graph.relations()) == bob_relations
        assert mem.graph_show("Tom", user_id="bob")
    assert _traces(root) == []


class NoEraseStore(SQLiteRecordStore):
    """The SQLite store without the optional ``ScopeErase`` (a method set to ``None`` is not
    offered, for ``isinstance`` on a runtime-checkable Protocol)."""

    erase_scope = None


class NoEraseStorePlugin:
    @hookimpl
    def lightmem_register_backends(self, registrar):
        registrar.record_store("no-erase", lambda o, c: NoEraseStore(f"{c.memory_dir}/h.db"))


def test_a_store_without_scope_erase_refuses_before_anything_is_removed(tmp_path):
    host = _host()
    host.register(NoEraseStorePlugin(), "no-erase-store")
    config = reference_config(tmp_path / "mem", record_store={"model_name": "no-erase"})
    with LightMemory(config, host=host) as mem:
        assert not isinstance(mem.store, ScopeErase)
        mem.add([_msg(f"my locker code word is {MARKER}")], user_id=TENANT)
        before = mem.get_all(user_id=TENANT)
        assert before
        with pytest.raises(StoreError, match="ScopeErase") as info:
            mem.erase(user_id=TENANT)
        assert "NoEraseStore" in str(info.value)
        assert mem.get_all(user_id=TENANT) == before
        assert mem.search(MARKER.lower(), user_id=TENANT)


def test_indexes_without_compaction_are_not_listed_as_compacted(tmp_path):
    with LightMemory(reference_config(tmp_path / "mem"), host=_host()) as mem:
        mem.add([_msg(f"my locker code word is {MARKER}")], user_id=TENANT)
        mem.add([_msg("bob keeps a cat")], user_id="bob")
        indexes = [*mem._rt.backends.vector_indexes(), *mem._rt.backends.text_indexes()]
        assert indexes and not any(isinstance(i, IndexCompaction) for i in indexes)
        receipt = mem.erase(user_id=TENANT)
        assert receipt.entries == 1
        assert receipt.compacted == ()
        assert receipt.index_records == {
            "embedding_retriever:exact": 1,
            "context_retriever:keyword": 1,
        }
        assert not mem.search(MARKER.lower(), user_id=TENANT)
        assert mem.search("cat", user_id="bob")
