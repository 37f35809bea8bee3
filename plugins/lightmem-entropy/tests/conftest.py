"""A tiny random GPT-2 built once per test session (nothing is downloaded)."""

from __future__ import annotations

import os

import pytest

from lightmem_core.testing.conformance.pre_compressor import TEXTS, long_text

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CORPUS = [*TEXTS, long_text(3)]


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    from lightmem_core.testing.tiny_models import build_tiny_gpt2

    return str(build_tiny_gpt2(tmp_path_factory.mktemp("models") / "tiny-gpt2", corpus=CORPUS))


@pytest.fixture(scope="session")
def tiny_token_classifier(tmp_path_factory):
    from lightmem_core.testing.tiny_models import build_tiny_bert_token_classifier

    folder = tmp_path_factory.mktemp("models") / "tiny-classifier"
    return str(build_tiny_bert_token_classifier(folder, corpus=CORPUS))


@pytest.fixture
def make_compressor():
    """``make_compressor(model, **entropy_config)`` runs the real factory."""
    from lightmem_entropy.options import EntropyConfig, EntropyOptions
    from lightmem_entropy.plugin import build_compressor
    from lightmem_hookspecs import BackendContext

    def make(model, **config):
        options = EntropyOptions(EntropyConfig(model_name=model, **config))
        return build_compressor(options, BackendContext(memory_dir="unused"))

    return make


@pytest.fixture(scope="session")
def loaded_compressor(tiny_gpt2):
    from lightmem_entropy.options import EntropyConfig, EntropyOptions
    from lightmem_entropy.plugin import build_compressor
    from lightmem_hookspecs import BackendContext

    options = EntropyOptions(EntropyConfig(model_name=tiny_gpt2))
    return build_compressor(options, BackendContext(memory_dir="unused"))
