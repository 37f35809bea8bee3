"""The embedding-retriever conformance suite on every mode and engine of the ``qdrant`` plugin."""

from __future__ import annotations

import pytest
from lightmem_qdrant.plugin import QdrantOptions
from lightmem_qdrant.store import QdrantRetriever

from lightmem_core.testing.conformance.embedding_retriever import EmbeddingRetrieverConformance


class TestEdgeLocalPath(EmbeddingRetrieverConformance):
    """The default: ``path`` under the memory directory, embedded Qdrant Edge engine."""

    persistent = True

    @pytest.fixture
    def make_backend(self, store_dir):
        return lambda: QdrantRetriever(QdrantOptions(), memory_dir=str(store_dir))


class TestEdgeOptimizedSegments(EmbeddingRetrieverConformance):
    """Edge with the optimizer run after every upsert: searches go through the quantized,
    rescored segments rather than the appendable one."""

    persistent = True

    @pytest.fixture
    def make_backend(self, store_dir):
        options = QdrantOptions(path=str(store_dir / "q"), optimize_threshold=1)
        return lambda: QdrantRetriever(options, memory_dir=str(store_dir))


class TestInMemory(EmbeddingRetrieverConformance):
    """``path: ":memory:"``: qdrant-client's in-memory mode."""

    persistent = False

    @pytest.fixture
    def make_backend(self, store_dir):
        options = QdrantOptions(path=":memory:")
        return lambda: QdrantRetriever(options, memory_dir=str(store_dir))


class TestEdgeInMemory(EmbeddingRetrieverConformance):
    """``on_disk: false`` with ``engine: edge``: an Edge shard in a temporary directory."""

    persistent = False

    @pytest.fixture
    def make_backend(self, store_dir):
        options = QdrantOptions(on_disk=False, engine="edge")
        return lambda: QdrantRetriever(options, memory_dir=str(store_dir))


class TestClientLocalPath(EmbeddingRetrieverConformance):
    """``engine: client`` on a path: qdrant-client's own local storage (the original's)."""

    persistent = True

    @pytest.fixture
    def make_backend(self, store_dir):
        options = QdrantOptions(path=str(store_dir / "q"), engine="client")
        return lambda: QdrantRetriever(options, memory_dir=str(store_dir))
