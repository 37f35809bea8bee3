"""Registration, strict options through the core's converter, and discovery cost."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import attrs
import pytest
from lightmem_hookspecs import BackendContext, MemoryManager
from lightmem_openai import plugin
from lightmem_openai.plugin import OpenAIOptions

from lightmem_core.backends import Backends
from lightmem_core.config import (
    BackendSpec,
    ResolvedBackend,
    ResolvedConfig,
    parse_config,
    resolve_backend,
)
from lightmem_core.errors import ConfigError
from lightmem_core.hookchain import HookChain

SECRET = "sk-test-SECRET-5f3a9c1e77"


def _resolve(host, configs):
    """(registration, options) the way the core resolves ``$.memory_manager``."""
    spec = BackendSpec("openai", configs)
    return resolve_backend(host, "$.memory_manager", "memory_manager", spec)


def test_registers_openai_and_deepseek(lightmem_host):
    lightmem_host.register(plugin, "openai")
    registry = lightmem_host.registry
    assert sorted(registry.names("memory_manager")) == ["deepseek", "openai"]
    for name in ("openai", "deepseek"):
        registration = registry.get("memory_manager", name)
        assert registration.options is OpenAIOptions
        assert registration.description


def test_original_configuration_keys_are_accepted(lightmem_host, openai_server):
    lightmem_host.register(plugin, "openai")
    original = {
        "model": "qwen3-30b-a3b-instruct-2507",
        "api_key": SECRET,
        "max_tokens": 16000,
        "openai_base_url": openai_server.base_url,
        "temperature": 0.1,
        "top_p": 0.1,
        "top_k": 1,
        "seed": 42,
        "stop": [],
        "do_sample": False,
        "enable_vision": False,
        "vision_details": "auto",
        "deepseek_base_url": None,
        "vllm_base_url": None,
        "site_url": None,
        "app_name": None,
    }
    _registration, options = _resolve(lightmem_host, original)
    assert options.model == "qwen3-30b-a3b-instruct-2507" and options.max_tokens == 16000


def test_end_to_end_through_the_core(lightmem_host, openai_server, tmp_path):
    lightmem_host.register(plugin, "openai")
    configs = {"api_key": SECRET, "openai_base_url": openai_server.base_url}
    config = parse_config(
        {
            "memory_dir": str(tmp_path),
            "memory_manager": {"model_name": "openai", "configs": configs},
        }
    )
    registration, options = _resolve(lightmem_host, configs)
    manager = ResolvedBackend(
        "$.memory_manager", "memory_manager", config.memory_manager, registration, options
    )
    resolved = ResolvedConfig(config, (manager,), (), lightmem_host)
    hooks = HookChain(lightmem_host, None, memory_dir=str(tmp_path))
    backends = Backends(resolved, hooks)
    try:
        llm = backends.get("memory_manager")
        openai_server.queue("a fact")
        result, op = hooks.run_operation(
            "extract", lambda op: llm.complete([{"role": "user", "content": "remember this"}])
        )
    finally:
        backends.close()
    assert result.text == "a fact"
    # the call's usage is counted in the operation it ran inside
    assert op.usage.llm_calls == 1 and op.usage.prompt_tokens == result.prompt_tokens > 0


@pytest.mark.parametrize(
    ("configs", "expected"),
    [
        ({"temprature": 0.2}, "unknown key(s) temprature"),
        ({"temperature": 3.5}, "$.memory_manager.configs.temperature: must be within [0.0, 2.0]"),
        ({"max_tokens": "many"}, "$.memory_manager.configs.max_tokens"),
        ({"timeout": 0}, "$.memory_manager.configs.timeout: must be > 0"),
        ({"structured_output": "xml"}, "structured_output: must be one of 'auto'"),
        ({"openai_base_url": "localhost:8000"}, "must be an http:// or https:// URL"),
        ({"enable_vision": True}, "enable_vision: image input is not supported yet"),
        ({"model": {"name": "gpt"}}, "$.memory_manager.configs.model"),
    ],
)
def test_invalid_options_are_refused_with_a_path(lightmem_host, configs, expected):
    lightmem_host.register(plugin, "openai")
    with pytest.raises(ConfigError) as info:
        _resolve(lightmem_host, {"api_key": SECRET, **configs})
    assert expected in str(info.value)
    assert SECRET not in str(info.value)


def test_options_repr_masks_the_key():
    options = OpenAIOptions(api_key=SECRET)
    assert SECRET not in repr(options) and "api_key='***'" in repr(options)
    assert "api_key=None" in repr(OpenAIOptions())
    assert attrs.fields(OpenAIOptions).api_key.metadata["secret"] is True


def test_factory_builds_a_memory_manager(openai_server):
    context = BackendContext(memory_dir=".")
    backend = plugin._build_openai(OpenAIOptions(openai_base_url=openai_server.base_url), context)
    try:
        assert isinstance(backend, MemoryManager)
        assert backend.model_name == "gpt-4o-mini"
    finally:
        backend.close()
    deepseek = plugin._build_deepseek(OpenAIOptions(api_key=SECRET), context)
    assert deepseek.model_name == "deepseek-chat"
    assert deepseek.base_url == "https://api.deepseek.com/v1"
    deepseek.close()


def test_discovery_imports_no_openai():
    code = textwrap.dedent(
        """
        import sys
        from lightmem_core.plugins import PluginHost
        host = PluginHost(only=["openai"])
        assert sorted(host.registry.names("memory_manager")) == ["deepseek", "openai"], host.plugins
        heavy = [m for m in ("openai", "httpx", "httpx2", "pydantic") if m in sys.modules]
        assert not heavy, heavy
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)
