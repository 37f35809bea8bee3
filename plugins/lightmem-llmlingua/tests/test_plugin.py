"""Registration, option structuring through the core, discovery cost, and LightMemory end to end."""

from __future__ import annotations

import subprocess
import sys

import lightmem_llmlingua.plugin as plugin
import pytest
from lightmem_hookspecs import PreCompressor, TopicSegmenter
from lightmem_llmlingua.options import DEFAULT_MODEL

from lightmem_core.config import BackendSpec, resolve_backend
from lightmem_core.errors import ConfigError
from lightmem_core.testing import fresh_host


@pytest.fixture
def host():
    return fresh_host(plugin)


def resolve(host, kind, configs):
    return resolve_backend(host, f"$.{kind}", kind, BackendSpec("llmlingua-2", configs))


def test_plugin_module_imports_no_heavy_library():
    code = (
        "import sys, lightmem_llmlingua.plugin\n"
        "heavy = {'torch', 'numpy', 'transformers', 'llmlingua', 'tiktoken', 'huggingface_hub',\n"
        "         'lightmem_llmlingua.model', 'lightmem_llmlingua.compressor'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_registered_under_both_kinds(host):
    assert host.registry.get("pre_compressor", "LLMLingua_2") is not None
    assert host.registry.get("topic_segmenter", "llmlingua-2") is not None


def test_original_options_are_accepted(host, tiny_classifier):
    configs = {
        "llmlingua_config": {
            "model_name": tiny_classifier,
            "device_map": "cpu",
            "use_llmlingua2": True,
        },
        "llmlingua2_config": {"max_batch_size": 50, "max_force_token": 100},
        "compress_config": {"instruction": "", "rate": 0.6, "target_token": -1},
    }
    registration, options = resolve(host, "pre_compressor", configs)
    assert options.compress_config.rate == 0.6
    assert options.llmlingua_config.model_name == tiny_classifier
    from lightmem_hookspecs import BackendContext

    backend = registration.factory(options, BackendContext(memory_dir="unused"))
    assert isinstance(backend, PreCompressor)


def test_partial_nested_options_keep_defaults(host):
    _, options = resolve(host, "pre_compressor", {"compress_config": {"rate": 0.5}})
    assert options.llmlingua_config.model_name == DEFAULT_MODEL
    assert options.compress_config.target_token == -1


def test_segmenter_options(host, tiny_classifier):
    configs = {"model_name": tiny_classifier, "layers": [8, 9, 10, 11], "tolerance": 2}
    registration, options = resolve(host, "topic_segmenter", configs)
    assert options.layers == [8, 9, 10, 11] and options.combine == "confirm"
    from lightmem_hookspecs import BackendContext

    backend = registration.factory(options, BackendContext(memory_dir="unused"))
    assert isinstance(backend, TopicSegmenter)


@pytest.mark.parametrize(
    ("kind", "configs", "path"),
    [
        ("pre_compressor", {"llmlingua_config": {"device_map": "cuda:0"}}, "llmlingua_config"),
        ("topic_segmenter", {"device_map": "cuda:0"}, "$.topic_segmenter.configs"),
    ],
)
def test_cuda_on_a_cpu_torch_is_refused_when_the_configuration_is_read(host, kind, configs, path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this torch can use CUDA here")
    with pytest.raises(ConfigError) as info:
        resolve(host, kind, configs)
    message = str(info.value)
    assert path in message and "device_map: 'cuda:0' cannot be used" in message
    assert "'cpu'" in message


@pytest.mark.parametrize(
    ("kind", "configs", "message"),
    [
        (
            "pre_compressor",
            {"compress_config": {"rate": 0}},
            "compress_config.rate: must be within (0.0, 1.0], got 0",
        ),
        (
            "pre_compressor",
            {"compress_config": {"rate": 1.5}},
            "must be within (0.0, 1.0], got 1.5",
        ),
        ("pre_compressor", {"compress_config": {"ratio": 0.5}}, "unknown key(s) ratio"),
        ("pre_compressor", {"llmlingua_config": {"use_llmlingua2": False}}, "LLMLingua-1"),
        ("pre_compressor", {"llmlingua_config": {"device_map": "gpu"}}, "'cuda', 'cuda:N'"),
        ("pre_compressor", {"llmlingua2_config": {"max_batch_size": 0}}, "must be >= 1"),
        ("pre_compressor", {"engine": "fast"}, "$.pre_compressor.configs.engine"),
        ("topic_segmenter", {"combine": "vote"}, "$.topic_segmenter.configs.combine"),
        ("topic_segmenter", {"layers": "8"}, "$.topic_segmenter.configs.layers"),
        ("topic_segmenter", {"attention_weight": 2.0}, "must be between 0 and 1"),
        ("topic_segmenter", {"buffer_len": 4}, "buffer_len: must be >= 8, got 4"),
    ],
)
def test_bad_options_are_refused_with_a_path(host, kind, configs, message):
    with pytest.raises(ConfigError) as info:
        resolve(host, kind, configs)
    assert message in str(info.value)


# -- end to end ------------------------------------------------------------------------------


def demo_sessions():
    import json
    from importlib import resources

    data = json.loads(
        resources.files("lightmem_core").joinpath("data/demo_conversation.json").read_text()
    )
    return [[{**m, "time_stamp": s["date"]} for m in s["messages"]] for s in data["sessions"]]


def test_lightmemory_end_to_end_with_shared_model(tmp_path, tiny_classifier):
    import lightmem_core.builtin as builtin
    from lightmem_core import LightMemory
    from lightmem_core.testing.conformance.pre_compressor import is_subsequence, words
    from lightmem_core.testing.reference import ReferencePlugin, reference_config

    host = fresh_host(builtin, ReferencePlugin(), plugin)
    config = reference_config(
        tmp_path / "mem",
        pre_compress=True,
        pre_compressor={
            "model_name": "llmlingua-2",
            "configs": {
                "llmlingua_config": {
                    "model_name": tiny_classifier,
                    "device_map": "cpu",
                    "use_llmlingua2": True,
                },
                "compress_config": {"rate": 0.6, "force_tokens": ["Biscuit"]},
            },
        },
        topic_segment=True,
        topic_segmenter={"model_name": "llmlingua-2"},
        precomp_topic_shared=True,
        sensory_buffer_tokens=60,
        short_term_buffer_tokens=120,
    )
    with LightMemory.from_config(config, host=host) as mem:
        for session in demo_sessions():
            mem.add_memory(session)
        mem.flush()
        entries = mem.get_all()
        seen = "\n".join(f"{e.topic_id} {e.memory!r} <- {e.original_memory!r}" for e in entries)
        users = [m for s in demo_sessions() for m in s if m["role"] == "user"]
        assert len(entries) == len(users), seen  # messages_use: user_only
        compressed = [e for e in entries if e.original_memory is not None]
        assert len(compressed) > len(entries) // 2, seen
        for entry in compressed:
            assert is_subsequence(words(entry.memory), words(entry.original_memory)), seen
            assert len(words(entry.memory)) < len(words(entry.original_memory)), seen
        assert len({e.topic_id for e in entries}) > 1, seen
        hits = mem.retrieve("what is the name of my dog Biscuit", limit=3)
        assert any("Biscuit" in hit for hit in hits), (hits, seen)
        compressor = mem.backends.get("pre_compressor")
        segmenter = mem.backends.get("topic_segmenter")
        assert segmenter.handle is compressor.handle
        assert compressor.handle.loads == 1
