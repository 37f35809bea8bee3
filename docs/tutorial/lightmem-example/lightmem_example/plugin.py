"""Registers the ``filler-filter`` pre-compressor. Imports nothing heavy."""

from __future__ import annotations

import attrs
from lightmem_hookspecs import BackendRegistrar, hookimpl

#: The plugin contract (lightmem-hookspecs) version this plugin is built for.
LIGHTMEM_CONTRACT = "1.7"

DEFAULT_FILLERS = ("um", "uh", "erm", "you know", "i mean", "kind of", "sort of")


@attrs.frozen
class FillerOptions:
    """The backend's ``configs``: LightMem structures the user's mapping into this class."""

    fillers: list[str] = attrs.field(factory=lambda: list(DEFAULT_FILLERS))


def build(options: FillerOptions, context):
    # A real backend would import its heavy library here, not at module top.
    from .compressor import FillerFilter

    return FillerFilter(options.fillers)


@hookimpl
def lightmem_register_backends(registrar: BackendRegistrar) -> None:
    registrar.pre_compressor(
        "filler-filter",
        build,
        options=FillerOptions,
        description="Drops filler words such as 'um' and 'you know'.",
    )
