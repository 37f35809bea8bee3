"""The REST service and the MCP server over a memory (``lightmem serve``, ``lightmem mcp``).

Importing this package imports no web framework; :mod:`.app` (FastAPI) and :mod:`.mcp` (the
``mcp`` SDK) are imported by the commands that need them. Install them with
``pip install 'lightmem-core[service]'``.
"""

from __future__ import annotations

from .auth import Grant, Keys

__all__ = ["Grant", "Keys"]
