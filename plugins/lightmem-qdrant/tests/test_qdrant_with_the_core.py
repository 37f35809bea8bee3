"""The ``qdrant`` retriever inside a real ``LightMemory`` (reference hash embedder, no model)."""

from __future__ import annotations

from lightmem_qdrant import plugin

import lightmem_core.builtin as builtin
from lightmem_core import LightMemory
from lightmem_core.testing import fresh_host
from lightmem_core.testing.reference import ReferencePlugin, reference_config

FACTS = [
    "Alice adopted a grey cat named Miso",
    "Bob is training for the Lisbon marathon",
    "Alice works as a nurse at the city hospital",
]


def config(memory_dir, **configs):
    return reference_config(
        memory_dir,
        retrieve_strategy="embedding",
        embedding_retriever={"model_name": "qdrant", "configs": configs},
    )


def host():
    return fresh_host(builtin, ReferencePlugin(), plugin)


def test_memories_survive_a_restart(store_dir):
    with LightMemory(config(store_dir), host=host()) as mem:
        for text in FACTS:
            mem.add_memory(
                [{"role": "user", "content": text}],
                force_segment=True,
                force_extract=True,
                user_id="u1",
            )
        first = mem.retrieve("grey cat named Miso", limit=1, user_id="u1")
        assert "Miso" in first[0]
        assert mem.vector_index.count() == 3
    assert (store_dir / "qdrant" / "edge" / "lightmem" / "edge_config.json").exists()

    with LightMemory(config(store_dir), host=host()) as mem:
        assert mem.retrieve("Lisbon marathon", limit=1, user_id="u1")[0].endswith(FACTS[1])
        assert mem.retrieve("Lisbon marathon", limit=5, user_id="someone-else") == []
        assert mem.vector_index.count() == 3


def test_in_memory_mode_is_rebuilt_from_the_record_store(store_dir):
    with LightMemory(config(store_dir), host=host()) as mem:
        mem.add_memory(
            [{"role": "user", "content": FACTS[0]}], force_segment=True, force_extract=True
        )
    with LightMemory(config(store_dir, path=":memory:"), host=host()) as mem:
        assert "Miso" in mem.retrieve("grey cat", limit=1)[0]
        assert mem.vector_index.count() == 1
