"""Registration, options through the core's strict converter, modes, and discovery cost."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from lightmem_hookspecs import BackendContext, EmbeddingRetriever
from lightmem_qdrant import plugin
from lightmem_qdrant.plugin import QdrantOptions

from lightmem_core.config import structure
from lightmem_core.errors import ConfigError


def options(**configs) -> QdrantOptions:
    return structure(configs, QdrantOptions, path="$.embedding_retriever.configs")


def refused(**configs) -> str:
    with pytest.raises(ConfigError) as info:
        options(**configs)
    return str(info.value)


def test_registers_the_qdrant_embedding_retriever(lightmem_host):
    lightmem_host.register(plugin, "qdrant")
    registration = lightmem_host.registry.get("embedding_retriever", "qdrant")
    assert registration is not None
    assert registration.options is QdrantOptions
    assert "Qdrant" in registration.description
    assert lightmem_host.failed_plugins() == []


def test_factory_builds_a_retriever_under_the_memory_dir(lightmem_host, store_dir):
    lightmem_host.register(plugin, "qdrant")
    registration = lightmem_host.registry.get("embedding_retriever", "qdrant")
    retriever = registration.factory(QdrantOptions(), BackendContext(memory_dir=str(store_dir)))
    assert isinstance(retriever, EmbeddingRetriever)
    assert retriever.path == str(store_dir / "qdrant")
    assert retriever.engine_name == "edge"


def test_discovery_imports_no_heavy_library():
    probe = textwrap.dedent(
        """
        import json, sys
        import lightmem_qdrant.plugin
        heavy = ("qdrant_client", "qdrant_edge", "numpy", "torch", "httpx", "grpc", "pydantic")
        print(json.dumps([m for m in heavy if m in sys.modules]))
        """
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_the_original_lightmem_keys_are_accepted(store_dir):
    original = {
        "collection_name": "memories",
        "embedding_model_dims": 384,
        "host": None,
        "port": None,
        "path": str(store_dir / "qdrant"),
        "url": None,
        "api_key": None,
        "on_disk": True,
    }
    parsed = options(**original)
    assert parsed.collection_name == "memories"
    assert parsed.embedding_model_dims == 384
    assert parsed.mode() == "path" and parsed.resolved_engine() == "edge"


def test_the_original_client_key_is_refused_with_the_allowed_keys():
    message = refused(client="a QdrantClient")
    assert "client" in message and "collection_name" in message and "url" in message


@pytest.mark.parametrize(
    ("configs", "mode", "engine"),
    [
        ({}, "path", "edge"),
        ({"path": "/some/where"}, "path", "edge"),
        ({"path": ":memory:"}, "memory", "client"),
        ({"on_disk": False}, "memory", "client"),
        ({"on_disk": False, "engine": "edge"}, "memory", "edge"),
        ({"path": "/some/where", "engine": "client"}, "path", "client"),
        ({"url": "http://localhost:6333"}, "server", "client"),
        ({"host": "qdrant.internal", "port": 6333}, "server", "client"),
        ({"url": "https://x.cloud.qdrant.io", "api_key": "k", "on_disk": True}, "server", "client"),
    ],
)
def test_mode_and_engine_follow_the_options(configs, mode, engine):
    parsed = options(**configs)
    assert (parsed.mode(), parsed.resolved_engine()) == (mode, engine)


@pytest.mark.parametrize(
    ("configs", "field", "hint"),
    [
        ({"url": "http://h:6333", "host": "h"}, "url", "not both"),
        ({"url": "http://h:6333", "path": "/x"}, "path", "remove path"),
        ({"port": 6333}, "port", "needs host"),
        ({"api_key": "k"}, "api_key", "url or host"),
        ({"url": "http://h:6333", "engine": "edge"}, "engine", "cannot talk to a server"),
        ({"path": ":memory:", "on_disk": True}, "on_disk", "contradicts"),
        ({"url": "localhost:6333"}, "url", "full URL"),
        ({"engine": "rust"}, "engine", "'auto', 'edge', 'client'"),
        (
            {"quantization": "int4"},
            "quantization",
            "'int8', 'none', got 'int4'; did you mean 'int8'?",
        ),
        ({"batch_size": 0}, "batch_size", "> 0"),
        ({"embedding_model_dims": -1}, "embedding_model_dims", "> 0"),
        ({"oversampling": 0.5}, "oversampling", ">= 1.0"),
        ({"port": 70000, "host": "h"}, "port", "TCP port"),
        ({"collection_name": "  "}, "collection_name", "empty"),
        ({"collection_name": "../escape"}, "collection_name", "letters"),
    ],
)
def test_impossible_options_are_refused_with_the_field(configs, field, hint):
    message = refused(**configs)
    assert f"$.embedding_retriever.configs.{field}" in message
    assert hint in message


@pytest.mark.parametrize(
    ("configs", "bad"),
    [
        ({"batch_size": "256"}, "batch_size"),
        ({"on_disk": "yes"}, "on_disk"),
        ({"port": 6.5}, "port"),
    ],
)
def test_no_silent_type_coercion(configs, bad):
    assert bad in refused(**configs)


def test_api_key_stays_out_of_the_repr():
    parsed = options(url="http://127.0.0.1:6333", api_key="SECRET-KEY-123")
    assert "SECRET-KEY-123" not in repr(parsed)
