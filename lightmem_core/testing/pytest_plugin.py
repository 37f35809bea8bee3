"""The ``lightmem`` pytest plugin: fixtures for testing LightMem plugins, and the ``isolated``
marker (:mod:`lightmem_core.testing.isolation`) that runs a test in a child process."""

from __future__ import annotations

import pytest

from .fixtures import fresh_host
from .isolation import (  # hooks of the isolated marker
    pytest_addoption,
    pytest_configure,
    pytest_runtest_protocol,
    pytest_sessionstart,
)
from .openai_server import OpenAICompatibleServer

__all__ = [
    "lightmem_host",
    "openai_server",
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_protocol",
    "pytest_sessionstart",
]


@pytest.fixture
def lightmem_host():
    """A fresh :class:`~lightmem_core.plugins.PluginHost` that loads no entry points.

    Register the plugin under test with ``lightmem_host.register(module_or_object)``.
    """
    return fresh_host()


@pytest.fixture
def openai_server():
    """A running :class:`~lightmem_core.testing.openai_server.OpenAICompatibleServer`.

    Script it with ``openai_server.queue(...)`` / ``openai_server.responder``, point a client at
    ``openai_server.base_url`` and read ``openai_server.requests``. Stopped after the test.
    """
    with OpenAICompatibleServer() as server:
        yield server
