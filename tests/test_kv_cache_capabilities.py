"""A memory manager's optional KV-cache capabilities, found with ``isinstance``:
``SchemaInPrompt`` (one schema per request kind with ``kv_cache``) and ``CacheStats`` (the
backend's own counters under ``stats()["kv_cache"]["backend"]``)."""

from __future__ import annotations

import pytest
from lightmem_hookspecs import CacheStats, SchemaInPrompt

from lightmem_core import LightMemory
from lightmem_core.plugins import PluginHost
from lightmem_core.testing.reference import ReferencePlugin, reference_config
from lightmem_core.testing.scripted import ScriptedMemoryManager


class CachingManager(ScriptedMemoryManager):
    """Declares that its endpoint caches the schema, and counts what it was asked."""

    schema_in_prompt = True

    def cache_stats(self):
        return {"requests_seen": len(self.requests), "files": 0}


class SchemaOutsideTheCache(ScriptedMemoryManager):
    """Declares the flag, set to ``False``."""

    schema_in_prompt = False


def _memory(tmp_path, manager, **keys) -> LightMemory:
    host = PluginHost()
    host.register(ReferencePlugin(memory_manager=manager))
    config = reference_config(tmp_path / "mem", memory_manager={"model_name": "scripted"}, **keys)
    return LightMemory(config, host=host)


@pytest.mark.parametrize(
    ("manager", "kv_cache", "stable"),
    [
        (CachingManager(), True, True),
        (CachingManager(), False, False),  # the flag matters only with kv_cache
        (SchemaOutsideTheCache(), True, False),  # declared, but False
        (ScriptedMemoryManager(), True, False),  # not declared at all
    ],
)
def test_one_schema_per_kind_only_where_the_manager_says_the_endpoint_caches_it(
    tmp_path, manager, kv_cache, stable
):
    assert isinstance(manager, SchemaInPrompt) == hasattr(manager, "schema_in_prompt")
    with _memory(tmp_path, manager, kv_cache=kv_cache) as mem:
        assert mem._rt.prompts.stable_schema is stable


def test_the_managers_own_cache_counters_are_shown_where_it_offers_them(tmp_path):
    manager = CachingManager()
    assert isinstance(manager, CacheStats)
    with _memory(tmp_path, manager, kv_cache=True) as mem:
        stats = mem.stats()["kv_cache"]
        assert stats["enabled"] is True
        assert stats["backend"] == {"requests_seen": 0, "files": 0}
        manager.queue('{"facts": []}')
        mem._rt.llm.complete([{"role": "user", "content": "hello"}])
        assert mem.stats()["kv_cache"]["backend"] == {"requests_seen": 1, "files": 0}

    plain = ScriptedMemoryManager()
    assert not isinstance(plain, CacheStats)
    with _memory(tmp_path / "plain", plain, kv_cache=True) as mem:
        stats = mem.stats()["kv_cache"]
        assert "backend" not in stats
        assert stats["llm_calls"] == 0
