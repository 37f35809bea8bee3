"""The ``lightmem`` pytest plugin (``lightmem-core``'s ``pytest11`` entry point): the
``lightmem_host`` fixture, and nothing heavy, since every pytest run of a project that installs
``lightmem-core`` loads it.

The loopback OpenAI-compatible server and the ``isolated`` marker are opt-in; a test suite that
wants them names them in its top-level ``conftest.py``::

    pytest_plugins = ["lightmem_core.testing.loopback", "lightmem_core.testing.isolation"]
"""

from __future__ import annotations

import pytest

__all__ = ["lightmem_host"]


@pytest.fixture
def lightmem_host():
    """A fresh :class:`~lightmem_core.plugins.PluginHost` that loads no entry points.

    Register the plugin under test with ``lightmem_host.register(module_or_object)``.
    """
    from .fixtures import fresh_host

    return fresh_host()
