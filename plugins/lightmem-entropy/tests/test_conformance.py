"""lightmem-entropy against the core's pre-compressor conformance suite, on a tiny random GPT-2."""

from __future__ import annotations

import pytest

from lightmem_core.testing.conformance.pre_compressor import PreCompressorConformance


@pytest.fixture(scope="module")
def small_window(tiny_gpt2):
    from lightmem_entropy.options import EntropyConfig, EntropyOptions
    from lightmem_entropy.plugin import build_compressor
    from lightmem_hookspecs import BackendContext

    options = EntropyOptions(EntropyConfig(model_name=tiny_gpt2, max_length=16, batch_size=3))
    return build_compressor(options, BackendContext(memory_dir="unused"))


class TestEntropyCompressor(PreCompressorConformance):
    @pytest.fixture
    def backend(self, loaded_compressor):
        return loaded_compressor


class TestEntropyCompressorSmallWindow(PreCompressorConformance):
    """Every message is scored in many overlapping windows, batched together."""

    @pytest.fixture
    def backend(self, small_window):
        return small_window
