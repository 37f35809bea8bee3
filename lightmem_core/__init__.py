"""LightMem: lightweight, fast long-term memory for LLM applications and agents."""

from lightmem_hookspecs import MemoryEntry, Message, Scope, SearchFilter, SearchHit, Usage

from .errors import (
    BackendError,
    BackendNotFoundError,
    ConfigError,
    ConfigProblem,
    DuplicateBackendError,
    ExtractionError,
    HookError,
    InputError,
    LightMemError,
    NotImplementedYetError,
    StoreError,
)

__version__ = "0.1.0"

__all__ = [
    "AddResult",
    "AsyncLightMemory",
    "BackendError",
    "BackendNotFoundError",
    "ConfigError",
    "ConfigProblem",
    "DuplicateBackendError",
    "ExtractionError",
    "HookError",
    "InputError",
    "LightMemConfig",
    "LightMemError",
    "LightMemory",
    "MemoryEntry",
    "Message",
    "NotImplementedYetError",
    "Scope",
    "SearchFilter",
    "SearchHit",
    "StoreError",
    "Usage",
    "__version__",
]


def __getattr__(name: str):
    # The facade pulls in the pipeline; keep `import lightmem_core` itself minimal.
    if name in ("LightMemory", "AddResult"):
        from . import memory

        return getattr(memory, name)
    if name == "AsyncLightMemory":
        from .aio import AsyncLightMemory

        return AsyncLightMemory
    if name == "LightMemConfig":
        from .config import LightMemConfig

        return LightMemConfig
    raise AttributeError(f"module 'lightmem_core' has no attribute {name!r}")
