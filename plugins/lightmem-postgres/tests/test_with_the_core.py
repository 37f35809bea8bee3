"""pgvector and postgres-fts inside a real LightMemory (reference hash embedder, no model)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from lightmem_postgres import plugin
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import lightmem_core.builtin as builtin
from lightmem_core import LightMemory
from lightmem_core.errors import BackendError
from lightmem_core.plugins import PluginHost
from lightmem_core.testing import fresh_host
from lightmem_core.testing.reference import ReferencePlugin, reference_config

FACTS = [
    "Carla keeps a grey cat called Miso on her balcony",
    "Dmitri signed up for the Lisbon marathon in October",
    "Carla teaches chemistry at the evening school",
]


def remember(mem: LightMemory, texts: list[str], user_id: str) -> None:
    """Each text as one user message, extracted at once (no LLM: the message is the entry)."""
    for text in texts:
        mem.add_memory(
            [{"role": "user", "content": text}],
            force_segment=True,
            force_extract=True,
            user_id=user_id,
        )


def config(memory_dir, dsn, schema, **overrides):
    server = {"dsn": dsn, "schema": schema}
    return reference_config(
        memory_dir,
        retrieve_strategy="hybrid",
        embedding_retriever={"model_name": "pgvector", "configs": server},
        context_retriever={"model_name": "postgres-fts", "configs": server},
        **overrides,
    )


def host():
    return fresh_host(builtin, ReferencePlugin(), plugin)


def test_the_plugin_is_discovered_through_its_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "lightmem_core.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout)
    ours = [p for p in data["plugins"] if p["distribution"] == "lightmem-postgres"]
    assert ours and not ours[0]["error"]
    registry = PluginHost().registry
    assert "pgvector" in registry.names("embedding_retriever")
    assert "postgres-fts" in registry.names("context_retriever")


def test_hybrid_search_on_postgres_survives_a_restart(tmp_path, postgres_dsn, schema):
    with LightMemory(config(tmp_path, postgres_dsn, schema), host=host()) as mem:
        remember(mem, FACTS, user_id="u1")
        hits = mem.search("grey cat named Miso", limit=1, user_id="u1")
        assert "Miso" in hits[0].entry.memory
        assert set(hits[0].scores) >= {"embedding", "context"}  # both retrievers answered
        assert mem.vector_index.count() == 3
    with LightMemory(config(tmp_path, postgres_dsn, schema), host=host()) as mem:
        assert mem.retrieve("Lisbon marathon", limit=1, user_id="u1")[0].endswith(FACTS[1])
        assert mem.retrieve("Lisbon marathon", limit=5, user_id="someone-else") == []


def test_an_unreachable_server_is_a_typed_error_naming_the_host(tmp_path, postgres_dsn, schema):
    """The retrievers connect when first used (the record store, when on Postgres, at open)."""
    params = conninfo_to_dict(postgres_dsn)
    dsn = make_conninfo(
        **{**params, "host": "127.0.0.1", "port": "1", "password": "hunter2-secret"},
        connect_timeout=2,
    )
    with (
        LightMemory(config(tmp_path, dsn, schema), host=host()) as mem,
        pytest.raises(BackendError) as info,
    ):
        mem.search("anything", user_id="u1")
    assert "127.0.0.1:1" in str(info.value)
    assert "hunter2-secret" not in str(info.value)
    assert type(info.value.__cause__).__name__ == "ServerUnreachableError"


def test_stats_and_repr_never_show_the_password(tmp_path, postgres_server, postgres_dsn, schema):
    params = conninfo_to_dict(postgres_dsn)
    dsn = make_conninfo(**{**params, "password": "hunter2-secret"})  # trust auth ignores it
    with LightMemory(config(tmp_path, dsn, schema), host=host()) as mem:
        mem.add_memory([{"role": "user", "content": FACTS[0]}], force_extract=True, user_id="u")
        shown = json.dumps(mem.stats(), default=str) + repr(mem.config)
        shown += repr(mem.vector_index) + repr(mem.config.embedding_retriever)
        assert "hunter2-secret" not in shown
