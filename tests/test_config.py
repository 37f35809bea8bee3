"""Configuration: the original LightMem dictionary, strictness, and error messages."""

from __future__ import annotations

import json

import attrs
import pytest

from lightmem_core import (
    BackendNotFoundError,
    ConfigError,
    LightMemory,
    NotImplementedYetError,
)
from lightmem_core.config import load_config_file, parse_config, resolve
from lightmem_core.plugins import PluginHost
from lightmem_core.testing.reference import reference_config


def original_config(tmp_path) -> dict:
    """The configuration dictionary of the original LightMem README, with local paths."""
    return {
        "pre_compress": True,
        "pre_compressor": {
            "model_name": "llmlingua-2",
            "configs": {
                "llmlingua_config": {
                    "model_name": str(tmp_path / "llmlingua-2-bert-base-multilingual-cased"),
                    "device_map": "cpu",
                    "use_llmlingua2": True,
                },
            },
        },
        "topic_segment": True,
        "precomp_topic_shared": True,
        "topic_segmenter": {"model_name": "llmlingua-2"},
        "messages_use": "user_only",
        "metadata_generate": True,
        "text_summary": True,
        "memory_manager": {
            "model_name": "openai",
            "configs": {
                "model": "gpt-4o-mini",
                "api_key": "sk-test",
                "max_tokens": 16000,
                "openai_base_url": "http://127.0.0.1:9/v1",
            },
        },
        "extract_threshold": 0.1,
        "index_strategy": "embedding",
        "text_embedder": {
            "model_name": "huggingface",
            "configs": {
                "model": str(tmp_path / "all-MiniLM-L6-v2"),
                "embedding_dims": 384,
                "model_kwargs": {"device": "cpu"},
            },
        },
        "retrieve_strategy": "embedding",
        "embedding_retriever": {
            "model_name": "qdrant",
            "configs": {
                "collection_name": "my_long_term_chat",
                "embedding_model_dims": 384,
                "path": str(tmp_path / "my_long_term_chat"),
            },
        },
        "update": "offline",
    }


def test_original_configuration_validates(tmp_path):
    for module in (
        "lightmem_llmlingua",
        "lightmem_openai",
        "lightmem_huggingface",
        "lightmem_qdrant",
    ):
        pytest.importorskip(module, reason=f"{module} is not installed (core-only run)")
    (tmp_path / "all-MiniLM-L6-v2").mkdir()  # a model folder named by a path must exist
    resolved = resolve(original_config(tmp_path), PluginHost())
    assert resolved.config.memory_manager.model_name == "openai"
    assert [(b.path, b.kind) for b in resolved.backends] == [
        ("$.pre_compressor", "pre_compressor"),
        ("$.topic_segmenter", "topic_segmenter"),
        ("$.memory_manager", "memory_manager"),
        ("$.text_embedder", "text_embedder"),
        ("$.embedding_retriever", "embedding_retriever"),
    ]
    options = resolved.for_key("embedding_retriever").options
    assert options.embedding_model_dims == 384
    assert [(r.label, r.backend.name) for r in resolved.retrievers] == [("embedding", "qdrant")]


def test_wrong_type_inside_backend_configs_names_the_path(tmp_path, ref_host):
    cfg = reference_config(
        tmp_path, embedding_retriever={"model_name": "exact", "configs": {"persist": "yes"}}
    )
    with pytest.raises(ConfigError) as info:
        resolve(cfg, ref_host)
    assert "$.embedding_retriever.configs.persist: expected bool, got 'yes'" in str(info.value)


def test_qdrant_dims_wrong_type(tmp_path):
    pytest.importorskip("lightmem_qdrant")
    cfg = {
        "embedding_retriever": {"model_name": "qdrant", "configs": {"embedding_model_dims": "x"}}
    }
    with pytest.raises(ConfigError) as info:
        resolve(cfg, PluginHost())
    assert "$.embedding_retriever.configs.embedding_model_dims: expected int, got 'x'" in str(
        info.value
    )


def test_no_silent_coercion():
    with pytest.raises(ConfigError, match=r"\$\.sensory_buffer_tokens: expected int, got '512'"):
        parse_config({"sensory_buffer_tokens": "512"})
    with pytest.raises(ConfigError, match=r"\$\.pre_compress: expected bool, got 1"):
        parse_config({"pre_compress": 1})


def test_unknown_key_is_refused_with_allowed_keys():
    with pytest.raises(ConfigError) as info:
        parse_config({"retreive_strategy": "hybrid"})
    message = str(info.value)
    assert "unknown key(s) retreive_strategy" in message
    assert "retrieve_strategy" in message


def test_unknown_key_in_backend_configs(tmp_path, ref_host):
    cfg = reference_config(tmp_path, text_embedder={"model_name": "hash", "configs": {"dimz": 3}})
    with pytest.raises(ConfigError, match=r"\$\.text_embedder\.configs: unknown key\(s\) dimz"):
        resolve(cfg, ref_host)


def test_unknown_backend_lists_installed_failed_and_pip_hint(tmp_path, ref_host):
    class Broken:
        pass

    info = ref_host.register(Broken(), "broken-plugin", distribution="lightmem-broken")
    info.error = "ImportError: no module named foo"
    cfg = reference_config(tmp_path, embedding_retriever={"model_name": "qdrant"})
    with pytest.raises(BackendNotFoundError) as exc:
        resolve(cfg, ref_host)
    message = str(exc.value)
    assert "$.embedding_retriever.model_name" in message
    assert "Installed embedding_retriever backends: exact" in message
    hint = "pip install -c constraints.txt ./plugins/lightmem-qdrant"
    assert hint in message
    assert "broken-plugin (lightmem-broken): ImportError" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("kv_cache", "online"),
        ("summary_retriever", {"model_name": "qdrant"}),
        ("extraction_mode", "event"),
        ("logging", {"level": "INFO"}),
    ],
)
def test_features_not_built_yet_are_refused(key, value):
    with pytest.raises(NotImplementedYetError, match=f"\\$\\.{key}: .*not implemented yet"):
        parse_config({key: value})


def test_graph_mem_without_a_graph_backend_is_refused(tmp_path, ref_host):
    with pytest.raises(ConfigError, match=r"\$\.graph_mem"):
        resolve(reference_config(tmp_path, graph_mem=True), ref_host)


def test_defaults_fill_the_embedded_stack():
    config = parse_config({})
    assert config.retrieve_strategy == "hybrid"
    assert config.text_embedder.model_name == "huggingface"
    assert config.embedding_retriever.model_name == "qdrant"
    assert config.context_retriever.model_name == "sqlite-bm25"
    only_dense = parse_config({"retrieve_strategy": "embedding"})
    assert only_dense.context_retriever is None


def test_explicit_none_turns_a_stage_off():
    config = parse_config({"retrieve_strategy": "context", "text_embedder": None})
    assert config.text_embedder is None and config.embedding_retriever is None


def test_chain_order_comes_from_config(tmp_path, ref_host):
    from lightmem_hookspecs import hookimpl

    class Tag:
        def __init__(self, tag):
            self.tag = tag

        def compress(self, texts):
            return [f"{t} {self.tag}" for t in texts]

    class Chain:
        @hookimpl
        def lightmem_register_backends(self, registrar):
            registrar.pre_compressor("a", lambda o, c: Tag("A"))
            registrar.pre_compressor("b", lambda o, c: Tag("B"))

    ref_host.register(Chain(), "chain")
    for order, expected in ((["b", "a"], "hi B A"), (["a", "b"], "hi A B")):
        cfg = reference_config(
            tmp_path / "".join(order),
            pre_compress=True,
            pre_compressor=[{"model_name": n} for n in order],
        )
        with LightMemory(cfg, host=ref_host) as mem:
            mem.add_memory(
                [{"role": "user", "content": "hi"}], force_segment=True, force_extract=True
            )
            assert [e.memory for e in mem.get_all()] == [expected]


@pytest.mark.parametrize("suffix", [".json", ".toml", ".yaml"])
def test_config_files(tmp_path, suffix):
    path = tmp_path / f"config{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"retrieve_strategy": "context", "messages_use": "hybrid"}))
    elif suffix == ".toml":
        path.write_text('retrieve_strategy = "context"\nmessages_use = "hybrid"\n')
    else:
        path.write_text("retrieve_strategy: context\nmessages_use: hybrid\n")
    config = parse_config(load_config_file(path), source=str(path))
    assert (config.retrieve_strategy, config.messages_use) == ("context", "hybrid")


def test_config_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("messages_use: everyone\n")
    with pytest.raises(ConfigError) as info:
        parse_config(load_config_file(path), source=str(path))
    assert str(path) in str(info.value)
    assert "$.messages_use: expected one of" in str(info.value)


def test_wrong_type_of_a_secret_does_not_print_it(tmp_path, ref_host):
    from lightmem_core.config import structure

    @attrs.frozen
    class Opts:
        api_key: str | None = None

    with pytest.raises(ConfigError) as info:
        structure({"api_key": 123456789}, Opts, path="$.memory_manager.configs")
    assert "123456789" not in str(info.value)
    assert "$.memory_manager.configs.api_key: expected str" in str(info.value)


def test_auth_headers_under_extra_headers_are_masked_in_the_repr():
    from lightmem_core.config import parse_config

    secrets = {
        "Authorization": "Bearer sk-header-secret-1",
        "api-key": "azure-secret-2",
        "X-Api-Key": "gateway-secret-3",
        "Proxy-Authorization": "Basic proxy-secret-4",
    }
    config = parse_config(
        {
            "memory_manager": {
                "model_name": "openai",
                "configs": {"extra_headers": {**secrets, "X-Trace": "visible-trace"}},
            }
        }
    )
    shown = repr(config)
    for value in secrets.values():
        assert value not in shown
    assert "visible-trace" in shown  # other headers stay readable
    assert shown.count("***") == len(secrets)
