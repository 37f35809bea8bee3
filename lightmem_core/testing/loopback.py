"""Opt-in pytest plugin: the ``openai_server`` fixture (a real OpenAI-compatible HTTP server on
loopback, :mod:`lightmem_core.testing.openai_server`). Enable it in a top-level ``conftest.py``
with ``pytest_plugins = ["lightmem_core.testing.loopback"]``."""

from __future__ import annotations

import pytest

from .openai_server import OpenAICompatibleServer

__all__ = ["openai_server"]


@pytest.fixture
def openai_server():
    """A running :class:`~lightmem_core.testing.openai_server.OpenAICompatibleServer`.

    Script it with ``openai_server.queue(...)`` / ``openai_server.responder``, point a client at
    ``openai_server.base_url`` and read ``openai_server.requests``. Stopped after the test.
    """
    with OpenAICompatibleServer() as server:
        yield server
