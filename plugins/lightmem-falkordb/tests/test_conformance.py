"""The FalkorDB graph memory against the core's GraphMemory conformance suite, on a real server."""

from __future__ import annotations

import pytest
from lightmem_falkordb.plugin import FalkorOptions, build_falkordb
from lightmem_hookspecs import BackendContext

from lightmem_core.testing.conformance.graph_memory import GraphMemoryConformance


class TestFalkorDB(GraphMemoryConformance):
    @pytest.fixture
    def make_backend(self, falkordb_server, graph_name, tmp_path):
        options = FalkorOptions(port=falkordb_server.port, graph=graph_name)
        context = BackendContext(memory_dir=str(tmp_path))
        yield lambda: build_falkordb(options, context)
        cleanup = build_falkordb(options, context)
        cleanup.drop()
        cleanup.close()
