"""A real Postgres for the plugin's tests: ``$LIGHTMEM_TEST_POSTGRES_DSN`` (an external server,
a database the tests may create schemas, roles and databases in) or, by default, a Postgres 16 +
pgvector server from the ``pgserver`` wheel started once per test session."""

from __future__ import annotations

import os
import uuid

import pytest

ENV_TEST_DSN = "LIGHTMEM_TEST_POSTGRES_DSN"


@pytest.fixture(scope="session")
def postgres_server():
    """The pgserver instance, or ``None`` when an external server is used."""
    if os.environ.get(ENV_TEST_DSN):
        yield None
        return
    from lightmem_postgres.server import temporary_server

    with temporary_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_dsn(postgres_server):
    if postgres_server is None:
        return os.environ[ENV_TEST_DSN]
    from lightmem_postgres.server import dsn

    return dsn(postgres_server)


@pytest.fixture
def schema():
    """A fresh schema name per test: tests share the server, never tables."""
    return f"t_{uuid.uuid4().hex[:16]}"
