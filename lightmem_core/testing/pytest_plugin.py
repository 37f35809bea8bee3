"""The ``lightmem`` pytest plugin: fixtures for testing LightMem plugins."""

from __future__ import annotations

import pytest

from .fixtures import fresh_host


@pytest.fixture
def lightmem_host():
    """A fresh :class:`~lightmem_core.plugins.PluginHost` that loads no entry points.

    Register the plugin under test with ``lightmem_host.register(module_or_object)``.
    """
    return fresh_host()
