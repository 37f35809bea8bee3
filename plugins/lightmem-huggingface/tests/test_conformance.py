"""The huggingface embedder against the core's TextEmbedder conformance suite."""

from __future__ import annotations

import pytest

from lightmem_core.testing.conformance.text_embedder import TextEmbedderConformance


class TestMiniLMConformance(TextEmbedderConformance):
    @pytest.fixture
    def backend(self, minilm):
        return minilm
