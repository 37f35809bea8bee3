"""Registers the ``entropy_compress`` pre-compressor; imports only the contract, attrs, stdlib.

torch and transformers are imported by the factory's module; the model loads on the first
``compress`` call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lightmem_hookspecs import BackendContext, BackendRegistrar, hookimpl

from .options import EntropyOptions

#: The plugin contract (lightmem-hookspecs) version this plugin is built for.
LIGHTMEM_CONTRACT = "1.7"

if TYPE_CHECKING:
    from .compressor import EntropyCompressor


def build_compressor(options: EntropyOptions, context: BackendContext) -> EntropyCompressor:
    """The factory: checks the model folder now (config.json only), loads it on first use."""
    from lightmem_textkit.models import read_model_info, resolve_model_folder

    from .compressor import EntropyCompressor
    from .model import check_causal_lm

    where = "pre_compressor.configs.entropy_config.model_name"
    folder = resolve_model_folder(options.entropy_config.model_name, where)
    info = read_model_info(folder, where, default_positions=1024)
    check_causal_lm(info, where)
    return EntropyCompressor(options.entropy_config, info)


@hookimpl
def lightmem_register_backends(registrar: BackendRegistrar) -> None:
    registrar.pre_compressor(
        "entropy_compress",
        build_compressor,
        options=EntropyOptions,
        description="Keeps the words a small causal LM finds most informative (local model).",
    )
