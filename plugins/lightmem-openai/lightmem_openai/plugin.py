"""Registers the ``openai`` and ``deepseek`` memory managers (any OpenAI-compatible endpoint).

This module is what the ``lightmem.plugins`` entry point names: it imports only the contract,
attrs (with the contract's shared option validators) and the standard library.
The ``openai`` client is imported when a backend is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lightmem_hookspecs import BackendContext, BackendRegistrar, hookimpl

from .options import DEEPSEEK, OPENAI, OpenAIOptions

#: The plugin contract (lightmem-hookspecs) version this plugin is built for.
LIGHTMEM_CONTRACT = "1.7"

if TYPE_CHECKING:
    from .manager import OpenAIChatManager


def build(
    options: OpenAIOptions, context: BackendContext | None = None, *, provider=OPENAI
) -> OpenAIChatManager:
    """Build a chat manager for ``provider`` (heavy imports happen here, not at discovery)."""
    from .manager import OpenAIChatManager

    return OpenAIChatManager(options, provider=provider)


def _build_openai(options: OpenAIOptions, context: BackendContext) -> OpenAIChatManager:
    return build(options, context, provider=OPENAI)


def _build_deepseek(options: OpenAIOptions, context: BackendContext) -> OpenAIChatManager:
    return build(options, context, provider=DEEPSEEK)


@hookimpl
def lightmem_register_backends(registrar: BackendRegistrar) -> None:
    registrar.memory_manager(
        "openai",
        _build_openai,
        options=OpenAIOptions,
        description=(
            "Chat completions over the OpenAI API or any OpenAI-compatible endpoint "
            "(vLLM, Ollama, llama.cpp server, LM Studio, Qwen/DashScope) via openai_base_url"
        ),
    )
    registrar.memory_manager(
        "deepseek",
        _build_deepseek,
        options=OpenAIOptions,
        description="Chat completions over the DeepSeek API (OpenAI-compatible)",
    )
