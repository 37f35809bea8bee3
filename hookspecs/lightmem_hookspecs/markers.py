"""The pluggy markers bound to the project name ``lightmem``."""

import pluggy

PROJECT_NAME = "lightmem"

#: Entry-point group plugins are discovered through.
ENTRY_POINT_GROUP = "lightmem.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
