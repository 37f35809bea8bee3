"""Both SQLite lexical indexes against the core's ContextRetriever conformance suite."""

from __future__ import annotations

import pytest
from lightmem_hookspecs import BackendContext
from lightmem_sqlite_index.plugin import (
    SQLiteBM25Options,
    SQLiteFTSOptions,
    build_sqlite_bm25,
    build_sqlite_fts,
)

from lightmem_core.testing.conformance.context_retriever import ContextRetrieverConformance


class TestSQLiteBM25Defaults(ContextRetrieverConformance):
    persistent = True

    @pytest.fixture
    def make_backend(self, tmp_path):
        context = BackendContext(memory_dir=str(tmp_path))
        return lambda: build_sqlite_bm25(SQLiteBM25Options(), context)

    @pytest.fixture
    def backend(self, make_backend):
        return make_backend()


class TestSQLiteBM25MergingOften(ContextRetrieverConformance):
    """Posting rows merged after every second add, plain whitespace terms."""

    persistent = True

    @pytest.fixture
    def make_backend(self, tmp_path):
        options = SQLiteBM25Options(
            tokenizer="whitespace", stopwords=False, use_stemming=False, merge_after=2
        )
        return lambda: build_sqlite_bm25(options, BackendContext(memory_dir=str(tmp_path)))

    @pytest.fixture
    def backend(self, make_backend):
        return make_backend()


class TestSQLiteFTSDefaults(ContextRetrieverConformance):
    persistent = True

    @pytest.fixture
    def make_backend(self, tmp_path):
        context = BackendContext(memory_dir=str(tmp_path))
        return lambda: build_sqlite_fts(SQLiteFTSOptions(), context)

    @pytest.fixture
    def backend(self, make_backend):
        return make_backend()


class TestSQLiteFTSPlain(ContextRetrieverConformance):
    """No stopwords, no stemming, whitespace tokens: the contract still holds."""

    persistent = True

    @pytest.fixture
    def make_backend(self, tmp_path):
        options = SQLiteFTSOptions(tokenizer="whitespace", stopwords=False, use_stemming=False)
        return lambda: build_sqlite_fts(options, BackendContext(memory_dir=str(tmp_path)))

    @pytest.fixture
    def backend(self, make_backend):
        return make_backend()
