"""Testing kit for plugin authors: pytest fixtures (the ``lightmem`` plugin), conformance suites.

Subclass a suite from :mod:`lightmem_core.testing.conformance` in your plugin's tests and give it
a ``backend`` fixture that returns your backend; the suite's tests then run against it.
"""

from .fixtures import fresh_host

__all__ = ["fresh_host"]
