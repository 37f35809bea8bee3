"""The networkx graph memory against the core's GraphMemory conformance suite."""

from __future__ import annotations

import pytest
from lightmem_hookspecs import BackendContext
from lightmem_networkx.plugin import NetworkxOptions, build_networkx

from lightmem_core.testing.conformance.graph_memory import GraphMemoryConformance


class TestNetworkxOnDisk(GraphMemoryConformance):
    @pytest.fixture
    def make_backend(self, tmp_path):
        context = BackendContext(memory_dir=str(tmp_path))
        return lambda: build_networkx(NetworkxOptions(), context)


class TestNetworkxInMemory(GraphMemoryConformance):
    persistent = False

    @pytest.fixture
    def make_backend(self, tmp_path):
        context = BackendContext(memory_dir=str(tmp_path))
        return lambda: build_networkx(NetworkxOptions(path=None), context)
