"""pgvector and postgres-fts against the core's conformance suites, on a real Postgres."""

from __future__ import annotations

import functools

import pytest
from lightmem_hookspecs import BackendContext
from lightmem_postgres.plugin import (
    PgVectorOptions,
    PostgresFTSOptions,
    PostgresStoreOptions,
    build_pgvector,
    build_postgres_fts,
)
from lightmem_postgres.records import PostgresRecordStore

from lightmem_core.testing.conformance.context_retriever import ContextRetrieverConformance
from lightmem_core.testing.conformance.embedding_retriever import EmbeddingRetrieverConformance
from lightmem_core.testing.conformance.record_store import RecordStoreConformance


class TestPgVector(EmbeddingRetrieverConformance):
    persistent = True

    @pytest.fixture
    def make_backend(self, postgres_dsn, schema, tmp_path):
        options = PgVectorOptions(dsn=postgres_dsn, schema=schema)
        context = BackendContext(memory_dir=str(tmp_path), instance="embedding")
        return lambda: build_pgvector(options, context)


class TestPostgresFTS(ContextRetrieverConformance):
    persistent = True

    @pytest.fixture
    def make_backend(self, postgres_dsn, schema, tmp_path):
        options = PostgresFTSOptions(dsn=postgres_dsn, schema=schema)
        return lambda: build_postgres_fts(options, BackendContext(memory_dir=str(tmp_path)))

    @pytest.fixture
    def backend(self, make_backend):
        return make_backend()


class TestPostgresFTSSimple(TestPostgresFTS):
    """The ``simple`` configuration: no stemming, no stop words."""

    @pytest.fixture
    def make_backend(self, postgres_dsn, schema, tmp_path):
        options = PostgresFTSOptions(dsn=postgres_dsn, schema=schema, language="simple")
        return lambda: build_postgres_fts(options, BackendContext(memory_dir=str(tmp_path)))


class TestPostgresRecordStore(RecordStoreConformance):
    @pytest.fixture
    def make_store(self, postgres_dsn, schema):
        return functools.partial(
            PostgresRecordStore, PostgresStoreOptions(dsn=postgres_dsn, schema=schema)
        )
