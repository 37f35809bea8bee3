"""The example plugin passes LightMem's pre-compressor conformance suite."""

import pytest
from lightmem_example.compressor import FillerFilter
from lightmem_example.plugin import DEFAULT_FILLERS

conformance = pytest.importorskip("lightmem_core.testing.conformance.pre_compressor")


class TestFillerFilter(conformance.PreCompressorConformance):
    compresses = False  # it drops filler words only; text without any is kept whole

    @pytest.fixture
    def backend(self):
        return FillerFilter(DEFAULT_FILLERS)


def test_drops_fillers():
    out = FillerFilter(DEFAULT_FILLERS).compress(["Um, I mean my dog is, you know, called Rex"])
    assert out == ["my dog is, called Rex"]
