"""Checking that a model folder holds a causal LM (config.json only, stdlib only)."""

from __future__ import annotations

from lightmem_textkit.models import ModelInfo


def check_causal_lm(info: ModelInfo, where: str) -> None:
    """Refuse a folder whose model does not predict the next token."""
    if info.causal_lm:
        return
    hint = ""
    if info.token_classifier:
        hint = " A token classifier is an LLMLingua-2 checkpoint: use pre_compressor `llmlingua-2`."
    raise ValueError(
        f"{where}: {info.path!r} holds {info.describe()}, but entropy_compress needs a causal "
        f"language model (architectures ending in ForCausalLM or LMHeadModel, e.g. GPT-2).{hint}"
    )
