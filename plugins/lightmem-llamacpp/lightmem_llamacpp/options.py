"""Options of the ``llama-cpp`` memory manager (attrs and the standard library only)."""

from __future__ import annotations

from typing import Any

import attrs
from lightmem_hookspecs.options import OptionError, in_range, positive


def _gpu_layers(_inst: Any, attribute: attrs.Attribute, value: int) -> None:
    if value < -1:
        raise OptionError.at(
            attribute, f"must be -1 (all layers), 0 (CPU only) or more, got {value}"
        )


@attrs.frozen
class LlamaCppOptions:
    """Options of the ``llama-cpp`` memory manager (``memory_manager.configs``).

    Generation names and defaults follow the original LightMem ``memory_manager`` configuration
    (``max_tokens``, ``temperature``, ``top_p``, ``top_k``); the rest are llama.cpp's own.
    """

    model_path: str | None = None
    model: str | None = None
    n_ctx: int = attrs.field(default=4096, validator=positive)
    n_threads: int | None = attrs.field(default=None, validator=positive)
    n_gpu_layers: int = attrs.field(default=0, validator=_gpu_layers)
    max_tokens: int = attrs.field(default=2000, validator=positive)
    temperature: float = attrs.field(default=0.1, validator=in_range(0.0, 2.0))
    top_p: float = attrs.field(default=0.1, validator=in_range(0.0, 1.0))
    top_k: int = attrs.field(default=1, validator=in_range(0, 1_000_000))
    repeat_penalty: float = attrs.field(default=1.1, validator=in_range(0.0, 10.0))
    seed: int = 42
    chat_format: str | None = None
    verbose: bool = False
    timeout: float = attrs.field(default=300.0, validator=positive)
    start_timeout: float = attrs.field(default=120.0, validator=positive)
    #: With ``kv_cache``: the KV cache files under ``kv_cache_path`` stay below this size (the
    #: least recently used are removed first).
    kv_cache_max_mb: int = attrs.field(default=1024, validator=positive)
    #: Prompts are evaluated in blocks of this many tokens; a cached prefix is whole blocks.
    kv_cache_block: int = attrs.field(default=64, validator=in_range(8, 512))
