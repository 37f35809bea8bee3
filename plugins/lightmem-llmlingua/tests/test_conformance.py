"""lightmem-llmlingua against the core's conformance suites, on a tiny random model."""

from __future__ import annotations

import pytest
from lightmem_hookspecs import BackendContext

from lightmem_core.testing.conformance.pre_compressor import PreCompressorConformance
from lightmem_core.testing.conformance.topic_segmenter import TopicSegmenterConformance
from lightmem_core.testing.reference import HashEmbedder


@pytest.fixture(scope="module")
def small_window_compressor(tiny_classifier):
    from lightmem_llmlingua.options import LLMLingua2Options, LLMLinguaConfig
    from lightmem_llmlingua.plugin import build_compressor

    options = LLMLingua2Options(
        llmlingua_config=LLMLinguaConfig(model_name=tiny_classifier), max_seq_len=16
    )
    return build_compressor(options, BackendContext(memory_dir="unused"))


@pytest.fixture(scope="module")
def combined_segmenter(tiny_classifier):
    from lightmem_llmlingua.options import SegmenterOptions
    from lightmem_llmlingua.plugin import build_segmenter

    ctx = BackendContext(memory_dir="unused", get_backend={"text_embedder": HashEmbedder()}.get)
    return build_segmenter(SegmenterOptions(model_name=tiny_classifier, buffer_len=64), ctx)


@pytest.fixture(scope="module")
def attention_segmenter(tiny_classifier):
    from lightmem_llmlingua.options import SegmenterOptions
    from lightmem_llmlingua.plugin import build_segmenter

    options = SegmenterOptions(model_name=tiny_classifier, combine="attention", min_segment=1)
    return build_segmenter(options, BackendContext(memory_dir="unused"))


class TestLLMLingua2Compressor(PreCompressorConformance):
    @pytest.fixture
    def backend(self, shared_compressor):
        return shared_compressor


class TestLLMLingua2CompressorSmallWindow(PreCompressorConformance):
    """Every message is cut into many chunks, batched together."""

    @pytest.fixture
    def backend(self, small_window_compressor):
        return small_window_compressor


class TestLLMLingua2Segmenter(TopicSegmenterConformance):
    @pytest.fixture
    def backend(self, combined_segmenter):
        return combined_segmenter


class TestLLMLingua2SegmenterAttentionOnly(TopicSegmenterConformance):
    @pytest.fixture
    def backend(self, attention_segmenter):
        return attention_segmenter
