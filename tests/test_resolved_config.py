"""The configuration is resolved once: the memory's backends, `lightmem config check`, the CLI and
the evaluation baselines all build from one typed ResolvedConfig."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import lightmem_core.config as config_module
from lightmem_core import LightMemory
from lightmem_core.config import ResolvedConfig, resolve
from lightmem_core.errors import ConfigError, InputError
from lightmem_core.testing.reference import reference_config


def _config(tmp_path, **overrides):
    return reference_config(
        tmp_path / "mem",
        text_embedder={"model_name": "hash", "configs": {"dims": 24}},
        **overrides,
    )


def test_resolve_returns_every_selected_backend_typed(tmp_path, ref_host):
    resolved = resolve(_config(tmp_path), ref_host)
    assert isinstance(resolved, ResolvedConfig)
    assert resolved.host is ref_host
    by_kind = {b.kind: b for b in resolved.backends}
    embedder = by_kind["text_embedder"]
    assert (embedder.path, embedder.name, embedder.options.dims) == ("$.text_embedder", "hash", 24)
    assert resolved.for_key("text_embedder") is embedder
    assert resolved.for_key("memory_manager") is None
    assert [(r.label, r.kind, r.backend.name) for r in resolved.retrievers] == [
        ("embedding", "embedding_retriever", "exact"),
        ("context", "context_retriever", "keyword"),
    ]
    # the chains as `config check` and stats() show them
    chains = resolved.chains(["h"])
    assert chains["retrievers"][0]["backend"] == "exact"
    assert chains["rerankers"] == ["newer_first"]  # the default without a memory manager
    assert chains["hooks"] == ["h"]


def test_a_memory_built_from_a_resolved_configuration_resolves_nothing_again(
    tmp_path, ref_host, monkeypatch
):
    resolved = resolve(_config(tmp_path), ref_host)

    def again(*args, **kwargs):
        raise AssertionError("the configuration was resolved a second time")

    monkeypatch.setattr(config_module, "resolve_backend", again)
    monkeypatch.setattr(config_module, "structure", again)
    with LightMemory(resolved) as mem:
        assert mem.resolved is resolved and mem.config is resolved.config
        assert mem.embedder is not None and mem.embedder.dimension == 24
        mem.add_memory(
            [{"role": "user", "content": "I keep bees in Lyon"}], True, True, user_id="u"
        )
        assert mem.search("bees", user_id="u")
        assert mem.stats()["chains"] == resolved.chains(mem.hooks.plugins)


def test_a_resolved_configuration_carries_its_own_directory_and_host(tmp_path, ref_host):
    resolved = resolve(_config(tmp_path), ref_host)
    with pytest.raises(InputError, match="already holds its memory_dir"):
        LightMemory(resolved, memory_dir=str(tmp_path / "other"))
    with pytest.raises(ConfigError):
        resolve({**_config(tmp_path), "sensory_buffer_tokens": 0}, ref_host)


def test_the_lexical_baseline_is_built_from_the_memory_s_resolved_retriever(tmp_path, ref_host):
    from lightmem_core.eval.baselines import build_bm25

    resolved = resolve(_config(tmp_path), ref_host)
    index = build_bm25(resolved, str(tmp_path / "baseline"))
    assert type(index).__name__ == "KeywordIndex"  # the memory's context retriever, not BM25


def test_config_check_prints_the_resolved_backends_and_chains(tmp_path):
    pytest.importorskip("lightmem_qdrant", reason="the embedded default is not installed")
    pytest.importorskip("lightmem_huggingface", reason="the embedded default is not installed")
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"memory_dir": str(tmp_path / "m")}), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "lightmem_core.cli", "config", "check", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "$.text_embedder: huggingface (plugin" in out
    assert "retrievers: embedding=embedding_retriever:qdrant (weight 1), context=" in out
    assert "rerankers: newer_first" in out
