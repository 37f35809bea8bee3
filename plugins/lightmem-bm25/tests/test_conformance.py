"""The BM25 retriever against the core's ContextRetriever conformance suite."""

from __future__ import annotations

import pytest
from lightmem_bm25.index import BM25Retriever
from lightmem_bm25.plugin import BM25Options, build_bm25
from lightmem_hookspecs import BackendContext

from lightmem_core.testing.conformance.context_retriever import ContextRetrieverConformance


class TestBM25Defaults(ContextRetrieverConformance):
    @pytest.fixture
    def backend(self, tmp_path):
        return build_bm25(BM25Options(), BackendContext(memory_dir=str(tmp_path)))


class TestBM25PlainOnDisk(ContextRetrieverConformance):
    """No stopwords, no stemming, BM25+, with a snapshot file: the contract still holds."""

    persistent = True

    @pytest.fixture
    def make_backend(self, tmp_path):
        options = BM25Options(stopwords=False, use_stemming=False, variant="plus", on_disk=True)
        return lambda: build_bm25(options, BackendContext(memory_dir=str(tmp_path)))

    @pytest.fixture
    def backend(self, make_backend):
        return make_backend()


class TestBM25L(ContextRetrieverConformance):
    @pytest.fixture
    def backend(self):
        return BM25Retriever(variant="l")
