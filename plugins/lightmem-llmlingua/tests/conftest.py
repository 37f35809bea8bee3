"""Tiny random LLMLingua-2-shaped models, built once per test session (nothing is downloaded)."""

from __future__ import annotations

import os
import shutil

import pytest

from lightmem_core.testing.conformance.pre_compressor import TEXTS as COMPRESSOR_TEXTS
from lightmem_core.testing.conformance.pre_compressor import long_text
from lightmem_core.testing.conformance.topic_segmenter import TOPICS

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CORPUS = [*COMPRESSOR_TEXTS, long_text(3), *(t for topic in TOPICS for t in topic)]


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory):
    """A random 2-label BERT token classifier in a folder whose name says nothing about BERT."""
    from lightmem_core.testing.tiny_models import build_tiny_bert_token_classifier

    folder = tmp_path_factory.mktemp("models") / "tiny-token-classifier"
    return str(build_tiny_bert_token_classifier(folder, corpus=CORPUS))


@pytest.fixture(scope="session")
def tiny_classifier_llmlingua_name(tiny_classifier, tmp_path_factory):
    """The same model in a folder named the way the stock llmlingua package expects."""
    folder = tmp_path_factory.mktemp("named") / "llmlingua-2-bert-base-multilingual-cased-tiny"
    shutil.copytree(tiny_classifier, folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory):
    from lightmem_core.testing.tiny_models import build_tiny_gpt2

    return str(build_tiny_gpt2(tmp_path_factory.mktemp("models") / "tiny-gpt2", corpus=CORPUS))


def new_context(shared: bool = False, backends: dict | None = None):
    from lightmem_hookspecs import BackendContext

    backends = backends or {}
    return BackendContext(
        memory_dir="unused", precomp_topic_shared=shared, get_backend=backends.get
    )


@pytest.fixture
def make_context():
    """``make_context(shared=False, backends={kind: backend})``: a BackendContext for factories."""
    return new_context


_COMPRESS_KEYS = {
    "rate",
    "target_token",
    "force_tokens",
    "force_reserve_digit",
    "token_to_word",
    "chunk_end_tokens",
}


@pytest.fixture
def make_compressor():
    """``make_compressor(model, ctx=None, rate=..., engine=..., ...)`` runs the real factory."""
    from lightmem_llmlingua.options import CompressConfig, LLMLingua2Options, LLMLinguaConfig
    from lightmem_llmlingua.plugin import build_compressor

    def make(model, ctx=None, device_map="cpu", **options):
        compress = {k: options.pop(k) for k in list(options) if k in _COMPRESS_KEYS}
        opts = LLMLingua2Options(
            llmlingua_config=LLMLinguaConfig(model_name=model, device_map=device_map),
            compress_config=CompressConfig(**compress),
            **options,
        )
        return build_compressor(opts, ctx or new_context())

    return make


@pytest.fixture
def make_segmenter():
    """``make_segmenter(model, ctx=None, **options)`` runs the real factory."""
    from lightmem_llmlingua.options import SegmenterOptions
    from lightmem_llmlingua.plugin import build_segmenter

    def make(model, ctx=None, **options):
        return build_segmenter(SegmenterOptions(model_name=model, **options), ctx or new_context())

    return make


@pytest.fixture(scope="session")
def shared_compressor(tiny_classifier):
    """One loaded batched compressor (rate 0.5) for the read-only tests."""
    from lightmem_llmlingua.options import CompressConfig, LLMLingua2Options, LLMLinguaConfig
    from lightmem_llmlingua.plugin import build_compressor

    opts = LLMLingua2Options(
        llmlingua_config=LLMLinguaConfig(model_name=tiny_classifier),
        compress_config=CompressConfig(rate=0.5),
    )
    return build_compressor(opts, new_context())
